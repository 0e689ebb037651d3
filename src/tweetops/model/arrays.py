"""A fitted pipeline as plain arrays, and its predictions computed with numpy (no JVM).

:func:`export_pipeline` reads a fitted `PipelineModel` (StringIndexer -> VectorAssembler ->
RandomForestRegressionModel) from the files Spark writes when it saves the model: the indexer's
labels, the assembler's input order, and every node of every tree with its split. Reading the
saved Parquet is one bulk read, where walking the trees through py4j would be one JVM call per
node. :class:`Forest` evaluates the exported arrays vectorised over rows with Spark's semantics:

- the indexer maps a value to its position in the labels; an unseen value or a null maps to
  `len(labels)` (`handleInvalid="keep"`);
- the assembler's column `i` is feature `i`; booleans are 1.0/0.0;
- a continuous split sends `x <= threshold` left, a categorical split sends `x` left when it is
  one of the split's left categories;
- the forest's prediction is the mean of its trees' leaf predictions (Spark's
  RandomForestRegressionModel averages; its tree weights are all 1.0).

This module imports numpy and pandas only at evaluation time, never pyspark.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LEAF = -1


@dataclass(frozen=True)
class Forest:
    """Every tree of a forest, flattened into arrays indexed by a global node id.

    `feature[n]` is the feature index a node splits on (`LEAF` for a leaf), `threshold[n]` its
    continuous threshold, `category_row[n]` its row in `left_categories` (-1 when the split is
    continuous), `left`/`right` the global ids of its children, `value[n]` a leaf's prediction,
    `roots` each tree's root and `depth` the deepest path.
    """

    feature: np.ndarray
    threshold: np.ndarray
    category_row: np.ndarray
    left_categories: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    weights: np.ndarray
    depth: int

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Mean leaf prediction over the trees for each row of the float matrix `features`."""
        rows = features.shape[0]
        if rows == 0:
            return np.zeros(0, dtype=np.float64)
        nodes = np.broadcast_to(self.roots, (rows, len(self.roots))).copy()
        row_index = np.arange(rows)[:, None]
        width = self.left_categories.shape[1]
        for _ in range(self.depth):
            feature = self.feature[nodes]
            inner = feature != LEAF
            if not inner.any():
                break
            x = features[row_index, np.where(inner, feature, 0)]
            category_row = self.category_row[nodes]
            categorical = category_row >= 0
            category = np.clip(x, 0, width - 1).astype(np.int64)
            in_left = self.left_categories[np.where(categorical, category_row, 0), category]
            go_left = np.where(
                categorical, in_left & (x >= 0) & (x < width), x <= self.threshold[nodes]
            )
            child = np.where(go_left, self.left[nodes], self.right[nodes])
            nodes = np.where(inner, child, nodes)
        leaf_values = self.value[nodes]
        if np.all(self.weights == 1.0):
            return leaf_values.sum(axis=1) / len(self.roots)
        return (leaf_values * self.weights).sum(axis=1) / len(self.roots)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays to store (see :meth:`from_arrays`)."""
        return {
            "feature": self.feature,
            "threshold": self.threshold,
            "category_row": self.category_row,
            "left_categories": self.left_categories,
            "left": self.left,
            "right": self.right,
            "value": self.value,
            "roots": self.roots,
            "weights": self.weights,
            "depth": np.array([self.depth], dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> Forest:
        """Rebuild a forest from what :meth:`to_arrays` returned (e.g. an opened npz file)."""
        return cls(
            feature=arrays["feature"],
            threshold=arrays["threshold"],
            category_row=arrays["category_row"],
            left_categories=arrays["left_categories"],
            left=arrays["left"],
            right=arrays["right"],
            value=arrays["value"],
            roots=arrays["roots"],
            weights=arrays["weights"],
            depth=int(arrays["depth"][0]),
        )


@dataclass(frozen=True)
class ExportedPipeline:
    """The fitted pipeline without Spark: indexer labels, assembler order and the forest."""

    labels: dict[str, list[str]]  # categorical input column -> its labels, index order
    indexed: dict[str, str]  # indexed column name -> the input column it indexes
    assembled: list[str]  # the assembler's input columns, in vector order
    forest: Forest

    @property
    def input_columns(self) -> list[str]:
        """The raw columns the pipeline reads, in the assembler's order."""
        return [self.indexed.get(name, name) for name in self.assembled]

    def feature_matrix(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """The assembled float matrix from raw column arrays (strings/None for categoricals)."""
        matrix = []
        for name in self.assembled:
            source = self.indexed.get(name)
            if source is None:
                matrix.append(np.asarray(columns[name], dtype=np.float64))
            else:
                matrix.append(index_labels(columns[source], self.labels[source]))
        return np.column_stack(matrix) if matrix else np.zeros((0, 0))

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Predictions for the rows given as raw column arrays."""
        return self.forest.predict(self.feature_matrix(columns))


def index_labels(values: np.ndarray, labels: list[str]) -> np.ndarray:
    """StringIndexer with handleInvalid="keep": a label's position, else `len(labels)`."""
    lookup = {label: float(position) for position, label in enumerate(labels)}
    unknown = float(len(labels))
    return np.fromiter(
        (lookup.get(value, unknown) if isinstance(value, str) else unknown for value in values),
        dtype=np.float64,
        count=len(values),
    )


def export_pipeline(saved_dir: Path) -> ExportedPipeline:
    """Read a PipelineModel saved by Spark at `saved_dir` (its `stages/` folder) into arrays."""
    stages = sorted((saved_dir / "stages").iterdir(), key=lambda path: int(path.name.split("_")[0]))
    labels: dict[str, list[str]] = {}
    indexed: dict[str, str] = {}
    assembled: list[str] | None = None
    forest: Forest | None = None
    for stage in stages:
        metadata = _metadata(stage)
        kind = metadata["class"].rsplit(".", 1)[-1]
        params = {**metadata.get("defaultParamMap", {}), **metadata.get("paramMap", {})}
        if kind == "StringIndexerModel":
            if params.get("handleInvalid") != "keep":
                raise ValueError("only StringIndexer(handleInvalid='keep') can be exported")
            inputs, outputs = _columns(params, "inputCol"), _columns(params, "outputCol")
            arrays = _read_parquet(stage / "data").column("labelsArray").to_pylist()[0]
            for source, target, values in zip(inputs, outputs, arrays, strict=True):
                labels[source], indexed[target] = list(values), source
        elif kind == "VectorAssembler":
            assembled = list(params["inputCols"])
        elif kind == "RandomForestRegressionModel":
            forest = _read_forest(stage)
        else:
            raise ValueError(f"cannot export pipeline stage {kind}")
    if assembled is None or forest is None:
        raise ValueError(f"{saved_dir} holds no VectorAssembler and random forest to export")
    return ExportedPipeline(labels=labels, indexed=indexed, assembled=assembled, forest=forest)


def _metadata(stage: Path) -> dict[str, Any]:
    part = next(
        path for path in sorted((stage / "metadata").iterdir()) if path.name.startswith("part-")
    )
    return json.loads(part.read_text(encoding="utf-8").splitlines()[0])


def _columns(params: dict[str, Any], name: str) -> list[str]:
    if f"{name}s" in params:
        return list(params[f"{name}s"])
    return [params[name]]


def _read_parquet(folder: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(folder)


def _read_forest(stage: Path) -> Forest:
    nodes = _read_parquet(stage / "data").to_pylist()
    # treesMetadata rows are (treeID, metadata JSON, weight), written as a tuple: _1, _2, _3
    weights_by_tree = {
        row["_1"]: float(row["_3"]) for row in _read_parquet(stage / "treesMetadata").to_pylist()
    }
    by_tree: dict[int, list[dict[str, Any]]] = {}
    for row in nodes:
        by_tree.setdefault(row["treeID"], []).append(row["nodeData"])
    feature, threshold, category_row, left, right, value = [], [], [], [], [], []
    categories: list[list[float]] = []
    roots, weights = [], []
    depth = 0
    offset = 0
    for tree_id in sorted(by_tree):
        tree = sorted(by_tree[tree_id], key=lambda node: node["id"])
        ids = {node["id"]: offset + position for position, node in enumerate(tree)}
        for node in tree:
            split = node["split"]
            value.append(float(node["prediction"]))
            if node["leftChild"] < 0:
                feature.append(LEAF), threshold.append(0.0), category_row.append(-1)
                left.append(ids[node["id"]]), right.append(ids[node["id"]])
                continue
            feature.append(int(split["featureIndex"]))
            left.append(ids[node["leftChild"]]), right.append(ids[node["rightChild"]])
            if int(split["numCategories"]) < 0:
                threshold.append(float(split["leftCategoriesOrThreshold"][0]))
                category_row.append(-1)
            else:
                threshold.append(0.0)
                category_row.append(len(categories))
                categories.append(list(split["leftCategoriesOrThreshold"]))
        roots.append(ids[tree[0]["id"]])  # the root is node 0 (ids are preorder)
        weights.append(weights_by_tree.get(tree_id, 1.0))
        depth = max(depth, _depth(tree))
        offset += len(tree)
    width = int(max((max(c) for c in categories if c), default=0.0)) + 2
    table = np.zeros((max(len(categories), 1), width), dtype=bool)
    for row, chosen in enumerate(categories):
        table[row, np.asarray(chosen, dtype=np.int64)] = True
    return Forest(
        feature=np.asarray(feature, dtype=np.int64),
        threshold=np.asarray(threshold, dtype=np.float64),
        category_row=np.asarray(category_row, dtype=np.int64),
        left_categories=table,
        left=np.asarray(left, dtype=np.int64),
        right=np.asarray(right, dtype=np.int64),
        value=np.asarray(value, dtype=np.float64),
        roots=np.asarray(roots, dtype=np.int64),
        weights=np.asarray(weights, dtype=np.float64),
        depth=depth,
    )


def _depth(tree: list[dict[str, Any]]) -> int:
    by_id = {node["id"]: node for node in tree}
    deepest, stack = 0, [(tree[0]["id"], 0)]
    while stack:
        node_id, level = stack.pop()
        node = by_id[node_id]
        deepest = max(deepest, level)
        if node["leftChild"] >= 0:
            stack.extend([(node["leftChild"], level + 1), (node["rightChild"], level + 1)])
    return deepest
