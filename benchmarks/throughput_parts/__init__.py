"""The pieces of `benchmarks/throughput.py`, the embedding-throughput benchmark (run that script, not these).

- config: corpus sizes, batch sizes, model shapes, paths, `log`
- models: which models are benchmarked and how diffemb loads them
- counting: what reaches a model's forward (rows, padded and real tokens) and the FLOPs that costs
- systems: diffemb and the peers it is compared with, behind one `encode` interface
- timing: the matmul rate and interleaved, repeated timing of the systems (corpus tokens per second)
- memory: peak memory of one run, in a fresh subprocess (`throughput.py --child`) or on the GPU
- runners: the benchmark parts (main, sweep, split, threads) for one model, into a `ModelResult`
- report: the Markdown report (header, model tables, targets, notes)
- sections: its sections on diffemb alone (batch_tokens sweep with the default judged, split, threads)
"""
