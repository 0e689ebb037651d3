"""A local cluster on loopback for `make cluster-up` / `make cluster-down`: PostgreSQL, an
authenticated `mlflow server` on it with proxied artifacts, and a Spark standalone master with
two workers started from the pyspark wheel. See docs/scale-out.md."""

from tweetops.cluster.stack import ClusterPorts, cluster_down, cluster_up, exports

__all__ = ["ClusterPorts", "cluster_down", "cluster_up", "exports"]
