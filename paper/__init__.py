"""One script per table of the paper (§4.1 small datasets, §4.2 large datasets, §4.3 data debugging): every
run the table needs, through the repository's entry points, then the table. See README, "Replicating the
paper", and docs/paper_proxy.md for the CPU proxies."""
