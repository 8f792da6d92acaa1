"""One script per table of the paper (§4.1 small datasets and its transfer to Tiny ImageNet / CUB-200 /
Caltech-256, §4.2 large datasets, §4.3 data debugging): every run the table needs, through the repository's
entry points, then the table. See README, "Replicating the paper", docs/paper_datasets.md for the datasets'
layouts and docs/paper_proxy.md for the CPU proxies."""
