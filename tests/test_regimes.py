"""The regimes pool's generators (text, tables, exact-rate noise) and the shipped generalist on a transformer run
it never saw: a BERT built from a config, trained by the Hugging Face ``Trainer`` with AdamW and linear decay
through :class:`labeltrace.hf.DynamicsCallback`, on a generated text task of a seed and vocabulary no pool run
has."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from datasets.generated_noise import generated_noise
from datasets.tabular import load_table
from datasets.text import SEQ_LEN, make_text_task, vocabulary_size
from labeltrace.errors import UsageError


def test_text_task_is_seeded_balanced_and_shaped():
    a, b = make_text_task(200, seed=3, vocab_seed=5), make_text_task(200, seed=3, vocab_seed=5)
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.labels, b.labels)
    assert a.tokens.shape == (200, SEQ_LEN) and a.tokens.dtype == np.int64
    assert np.bincount(a.labels).tolist() == [50, 50, 50, 50]
    assert (a.tokens[:, 0] == 1).all() and a.tokens.min() >= 1 and a.tokens.max() < a.vocab_size
    assert a.vocab_size == vocabulary_size(4, 12, 6) == 2 + 40 + 48 + 12
    assert a.partner.tolist() == [1, 0, 3, 2]
    assert 0 <= a.ambiguity.min() and a.ambiguity.max() <= 0.5
    other = make_text_task(200, seed=3, vocab_seed=6)  # same sentences' plan, other word meanings
    assert np.array_equal(other.labels, a.labels) and not np.array_equal(other.tokens, a.tokens)
    with pytest.raises(UsageError):
        make_text_task(10, num_classes=3)


def test_text_ambiguity_is_the_share_of_partner_words():
    # A bag-of-words classifier fitted on half the sentences errs on the most ambiguous quarter of the other
    # half far more than on the rest: ambiguity is what makes a sentence read as its partner class.
    from sklearn.linear_model import LogisticRegression

    task = make_text_task(2000, seed=1)
    class_words = (task.tokens[:, 1:] >= 2 + 40).sum(axis=1)  # ids past [CLS] and the 40 filler words
    bags = np.zeros((len(task.tokens), task.vocab_size))
    np.add.at(bags, (np.repeat(np.arange(len(bags)), SEQ_LEN), task.tokens.ravel()), 1)
    probs = LogisticRegression(max_iter=500).fit(bags[:1000], task.labels[:1000]).predict_proba(bags[1000:])
    error = probs.argmax(1) != task.labels[1000:]
    high = task.ambiguity[1000:] > np.quantile(task.ambiguity, 0.75)
    assert class_words.min() >= 1  # every sentence holds some class word (4 slots, filler ids below 42)
    assert error[high].mean() > 3 * error[~high].mean()


def test_noise_changes_exactly_the_asked_share():
    true = np.arange(100) % 4
    partner = np.array([1, 0, 3, 2])
    ambiguity = np.zeros(100)
    for kind in ("uniform", "flip", "instance"):
        assigned = generated_noise(true, ratio=0.3, kind=kind, num_classes=4, partner=partner,
                                   ambiguity=ambiguity + 0.5, seed=1)
        changed = assigned != true
        assert changed.sum() == 30, kind
        assert np.array_equal(assigned, generated_noise(true, ratio=0.3, kind=kind, num_classes=4,
                                                        partner=partner, ambiguity=ambiguity + 0.5, seed=1))
        if kind != "uniform":
            assert np.array_equal(assigned[changed], partner[true[changed]]), kind
    tiny = generated_noise(np.array([0, 1, 2, 3]), ratio=0.5, kind="flip", num_classes=4, partner=partner,
                           ambiguity=np.zeros(4), seed=0)
    assert (tiny != [0, 1, 2, 3]).sum() == 2 and set(tiny) <= {0, 1, 2, 3}
    with pytest.raises(UsageError):
        generated_noise(true, ratio=0.3, kind="pairs", num_classes=4, partner=partner, ambiguity=ambiguity, seed=1)


def test_instance_noise_lands_on_ambiguous_samples():
    true = np.arange(100) % 4
    ambiguity = np.r_[np.zeros(50), np.ones(50)]  # the second half ambiguous, the first clear
    assigned = generated_noise(true, ratio=0.2, kind="instance", num_classes=4, partner=np.array([1, 0, 3, 2]),
                               ambiguity=ambiguity, seed=4)
    changed = np.flatnonzero(assigned != true)
    assert len(changed) == 20 and changed.min() >= 50  # a clear sample's weight is 1e-6 of an ambiguous one's


def test_tables_have_their_documented_shapes():
    wine = load_table("wine")
    assert wine.features.shape == (178, 13) and wine.num_classes == 3 and wine.features.dtype == np.float32
    assert np.allclose(wine.features.mean(axis=0), 0, atol=1e-5)
    assert (wine.partner != np.arange(3)).all() and 0 <= wine.ambiguity.min() and wine.ambiguity.max() <= 1
    generated = load_table("generated", seed=2)
    assert generated.features.shape == (2000, 20) and np.bincount(generated.labels).tolist() == [400] * 5
    assert np.array_equal(generated.features, load_table("generated", seed=2).features)
    assert not np.array_equal(generated.features, load_table("generated", seed=3).features)
    with pytest.raises(UsageError):
        load_table("iris")


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory):
    """A BERT (hidden 64, 2 layers) trained 10 epochs by the ``Trainer`` (AdamW, warmup, linear decay) on 800
    generated sentences of a seed and vocabulary no pool run has, 30% uniform noise, recorded by the callback."""
    from benchmarks import regime_recipes as recipes

    torch.manual_seed(0)
    task = make_text_task(800, seed=11, vocab_seed=11)
    assigned = generated_noise(task.labels, ratio=0.3, kind="uniform", num_classes=4, partner=task.partner,
                               ambiguity=task.ambiguity, seed=11)
    run_dir = tmp_path_factory.mktemp("bert") / "run"
    model = recipes.bert(task.vocab_size, SEQ_LEN, 4)
    recipes.train_hf(model, recipes.hf_items(torch.from_numpy(task.tokens), assigned, "bert"), epochs=10, lr=1e-3,
                     scheduler="linear", seed=11, run_dir=run_dir, labels=assigned, true_labels=task.labels,
                     num_classes=4)
    return run_dir


def test_shipped_generalist_ranks_a_transformer_runs_errors(bert_run):
    from labeltrace.baselines import mean_loss
    from labeltrace.metrics import detection_metrics
    from labeltrace.predict import GENERALIST, load_detector, score
    from labeltrace.traces import load_run

    traces = load_run(bert_run)
    assert traces.td.shape == (800, 10, 4) and traces.neighbours.shape == (800, 10)
    assert traces.label_flipped.sum() == 240  # exactly 30% flipped, known from the callback's true_labels
    model, info = load_detector(GENERALIST)
    p_noisy = score(model, info, traces.td, labels=traces.assigned, neighbours=traces.neighbours)[0]
    ours = detection_metrics(p_noisy, traces.label_flipped, remove_ratio=0.3).roc_auc
    loss = detection_metrics(mean_loss(traces.td), traces.label_flipped, remove_ratio=0.3).roc_auc
    # Measured 0.902 (mean loss 0.911, AUM 0.905: on this run the generalist does not beat them; the floor
    # sits below it by a margin for other torch builds). A detector that ignored the traces would read ~0.5.
    assert ours > 0.88, (ours, loss)
    assert loss > 0.88, loss  # the run learned: its errors are findable at all
