"""A generated text classification task: token ids from templates, for small transformers built from a config.

Each sample is a sentence of :data:`SEQ_LEN` token ids: ``[CLS]``, then filler words (the template: words
every class uses) with ``keywords`` slots holding class words. Classes come in confusable pairs (0-1, 2-3,
...): ``partner[c]`` is the other class of ``c``'s pair. Each class owns ``words_per_class`` words, and a pair
shares ``shared`` more that both of its classes use. A sample's *ambiguity* ``a`` (drawn per sample, skewed
low) is the fraction of its class-word slots filled with its partner's words instead of its own, so a sample
of ambiguity 0.5 is a coin toss between the pair's two classes, one of ambiguity 0 is unmistakable.

Token ids: 0 ``[PAD]`` (unused: every sentence is full), 1 ``[CLS]``, 2 .. 2+F-1 filler words, then the class
words, then the shared words of each pair. ``vocab_seed`` picks which ids serve which class, so two tasks of
different ``vocab_seed`` share no word meaning (a pretrained model must learn the new words).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeltrace.errors import UsageError

SEQ_LEN = 24
FILLER = 40


@dataclass(frozen=True)
class TextTask:
    """``tokens`` int64 (N, :data:`SEQ_LEN`); ``labels`` int64 (N,) the true classes; ``ambiguity`` float64 (N,)
    in [0, 0.5]; ``partner`` int64 (num_classes,); ``vocab_size`` the ids a model must embed."""

    tokens: np.ndarray
    labels: np.ndarray
    ambiguity: np.ndarray
    partner: np.ndarray
    num_classes: int
    vocab_size: int


def vocabulary_size(num_classes: int, words_per_class: int, shared: int) -> int:
    return 2 + FILLER + num_classes * words_per_class + (num_classes // 2) * shared


def make_text_task(n: int, *, num_classes: int = 4, seed: int = 0, vocab_seed: int = 0, keywords: int = 4,
                   words_per_class: int = 12, shared: int = 6) -> TextTask:
    """``n`` sentences of ``num_classes`` (even, >= 2) classes, balanced (class ``i % num_classes`` for sample
    ``i``, then shuffled); ``keywords`` class-word slots per sentence. Deterministic in (``seed``,
    ``vocab_seed``)."""
    if num_classes < 2 or num_classes % 2 or n < num_classes or not 1 <= keywords < SEQ_LEN - 1:
        raise UsageError(f"text task: need an even num_classes >= 2, n >= num_classes and 1 <= keywords < "
                         f"{SEQ_LEN - 1}; got n={n}, num_classes={num_classes}, keywords={keywords}")
    vocab = vocabulary_size(num_classes, words_per_class, shared)
    ids = np.random.default_rng([vocab_seed, 1]).permutation(np.arange(2 + FILLER, vocab))
    own = ids[:num_classes * words_per_class].reshape(num_classes, words_per_class)
    pair_words = ids[num_classes * words_per_class:].reshape(num_classes // 2, shared)
    partner = np.arange(num_classes) ^ 1
    rng = np.random.default_rng([seed, 2])
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    ambiguity = 0.5 * rng.beta(0.6, 2.0, size=n)  # most samples clear, a tail of near coin tosses
    tokens = rng.integers(2, 2 + FILLER, size=(n, SEQ_LEN)).astype(np.int64)
    tokens[:, 0] = 1
    for i in range(n):
        slots = 1 + rng.choice(SEQ_LEN - 1, size=keywords, replace=False)
        from_partner = rng.random(keywords) < ambiguity[i]
        c = labels[i]
        # A slot holds one of the pair's shared words a third of the time: they say "one of these two".
        pool = np.where(rng.random(keywords) < 1 / 3, -1, np.where(from_partner, partner[c], c))
        for slot, source in zip(slots, pool):
            words = pair_words[c // 2] if source < 0 else own[source]
            tokens[i, slot] = words[rng.integers(len(words))]
    return TextTask(tokens=tokens, labels=labels, ambiguity=ambiguity, partner=partner.astype(np.int64),
                    num_classes=num_classes, vocab_size=vocab)
