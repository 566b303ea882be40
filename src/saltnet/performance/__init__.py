"""What a run costs and buys: the time budget, the benchmark, gpu-check, the ensemble's memory."""
