"""The local test cluster behind `bash e2e/cluster.sh up|down|status|build [--kind]` (see e2e/README.md).

Standard library only: it runs before any `pip install`. The entry point is `cli.main`
(`python3 -m localcluster`, with e2e/ on the import path).
"""
