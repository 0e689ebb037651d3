"""A fitted pipeline as plain arrays, and its predictions computed with numpy (no JVM).

:func:`export_pipeline` reads a fitted `PipelineModel` (StringIndexer -> VectorAssembler ->
RandomForestRegressionModel) as it is in memory: the indexer's labels, the assembler's input
order, and every node of every tree with its split (:func:`read_forest`). :class:`Forest`
evaluates the exported arrays vectorised over rows with Spark's semantics:

- the indexer maps a value to its position in the labels; an unseen value or a null maps to
  `len(labels)` (`handleInvalid="keep"`);
- the assembler's column `i` is feature `i`; booleans are 1.0/0.0;
- a continuous split sends `x <= threshold` left, a categorical split sends `x` left when it is
  one of the split's left categories;
- the forest's prediction is the mean of its trees' leaf predictions (Spark's
  RandomForestRegressionModel averages; its tree weights are all 1.0).

This module imports numpy, never pyspark: the served model imports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

LEAF = -1


@dataclass(frozen=True)
class Forest:
    """Every tree of a forest, flattened into arrays indexed by a global node id.

    `feature[n]` is the feature index a node splits on (`LEAF` for a leaf), `threshold[n]` its
    continuous threshold, `category_row[n]` its row in `left_categories` (-1 when the split is
    continuous), `left`/`right` the global ids of its children, `value[n]` a leaf's prediction,
    `roots` each tree's root and `depth` the deepest path. Every tree weighs 1.0.
    """

    feature: np.ndarray
    threshold: np.ndarray
    category_row: np.ndarray
    left_categories: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
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
        mean: np.ndarray = self.value[nodes].sum(axis=1) / len(self.roots)
        return mean

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


def export_pipeline(model: PipelineModel) -> ExportedPipeline:
    """Read the stages of a fitted `model` (in memory) into arrays.

    Refuses, in one sentence, a stage other than StringIndexer(handleInvalid="keep"),
    VectorAssembler and RandomForestRegressionModel.
    """
    labels: dict[str, list[str]] = {}
    indexed: dict[str, str] = {}
    assembled: list[str] | None = None
    forest: Forest | None = None
    stage: Any  # a fitted stage, read by duck typing: this module does not import pyspark
    for stage in model.stages:
        kind = type(stage).__name__
        if kind == "StringIndexerModel":
            if stage.getHandleInvalid() != "keep":
                raise ValueError("only StringIndexer(handleInvalid='keep') can be exported")
            inputs, outputs = _columns(stage, "InputCol"), _columns(stage, "OutputCol")
            for source, target, values in zip(inputs, outputs, stage.labelsArray, strict=True):
                labels[source], indexed[target] = list(values), source
        elif kind == "VectorAssembler":
            assembled = list(stage.getInputCols())
        elif kind == "RandomForestRegressionModel":
            forest = read_forest(stage.toDebugString)
        else:
            raise ValueError(f"cannot export pipeline stage {kind}")
    if assembled is None or forest is None:
        raise ValueError("the pipeline holds no VectorAssembler and random forest to export")
    return ExportedPipeline(labels=labels, indexed=indexed, assembled=assembled, forest=forest)


def _columns(stage: Any, name: str) -> list[str]:
    """The stage's `inputCols`/`outputCols` when set, else its single `inputCol`/`outputCol`."""
    if stage.isSet(f"{name[0].lower()}{name[1:]}s"):
        return list(getattr(stage, f"get{name}s")())
    return [getattr(stage, f"get{name}")()]


_TREE = re.compile(r"^Tree (\d+) \(weight ([^)]+)\):$")
_SPLIT = re.compile(r"^(?:If|Else) \(feature (\d+) (<=|>|in|not in) (.+)\)$")
_LEAF = re.compile(r"^Predict: (.+)$")


def read_forest(description: str) -> Forest:
    """The forest of a RandomForestRegressionModel's `toDebugString`.

    The description is the whole forest in one JVM call (walking the trees through py4j would be
    one call per node). Its numbers are Java's `Double.toString`, which parses back to the same
    double, so the arrays hold exactly the model's thresholds and leaf predictions. A tree
    weighted other than 1.0 (never, in a RandomForestRegressionModel) is refused.
    """
    lines = [line.strip() for line in description.splitlines()[1:] if line.strip()]
    nodes = _ForestNodes()
    position = 0
    while position < len(lines):
        header = _TREE.match(lines[position])
        if header is None:
            raise ValueError(f"unexpected line in the forest's description: {lines[position]!r}")
        if float(header.group(2)) != 1.0:
            raise ValueError(f"tree {header.group(1)} is weighted {header.group(2)}, not 1.0")
        root = len(nodes.value)
        position, depth = nodes.read_subtree(lines, position + 1)
        nodes.roots.append(root)
        nodes.depth = max(nodes.depth, depth)
    return nodes.forest()


@dataclass
class _ForestNodes:
    """Nodes of every tree, appended in preorder: a node's global id is its position."""

    feature: list[int] = field(default_factory=list)
    threshold: list[float] = field(default_factory=list)
    category_row: list[int] = field(default_factory=list)
    categories: list[list[float]] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    right: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    roots: list[int] = field(default_factory=list)
    depth: int = 0

    def read_subtree(self, lines: list[str], position: int) -> tuple[int, int]:
        """Append the subtree starting at `lines[position]`; return the next line and its depth."""
        node = len(self.value)
        leaf = _LEAF.match(lines[position])
        if leaf is not None:
            self._append(LEAF, 0.0, -1, float(leaf.group(1)))
            self.left[node] = self.right[node] = node
            return position + 1, 0
        split = _SPLIT.match(lines[position])
        if split is None or not lines[position].startswith("If"):
            raise ValueError(f"unexpected line in the forest's description: {lines[position]!r}")
        feature, operator, operand = int(split.group(1)), split.group(2), split.group(3)
        if operator == "<=":
            self._append(feature, float(operand), -1, 0.0)
        else:
            self._append(feature, 0.0, len(self.categories), 0.0)
            self.categories.append([float(x) for x in operand.strip("{}").split(",") if x])
        self.left[node] = len(self.value)
        position, left_depth = self.read_subtree(lines, position + 1)
        if not lines[position].startswith("Else"):
            raise ValueError(f"expected the Else branch, got {lines[position]!r}")
        self.right[node] = len(self.value)
        position, right_depth = self.read_subtree(lines, position + 1)
        return position, 1 + max(left_depth, right_depth)

    def _append(self, feature: int, threshold: float, category_row: int, value: float) -> None:
        self.feature.append(feature)
        self.threshold.append(threshold)
        self.category_row.append(category_row)
        self.value.append(value)
        self.left.append(-1)
        self.right.append(-1)

    def forest(self) -> Forest:
        width = int(max((max(c) for c in self.categories if c), default=0.0)) + 2
        table = np.zeros((max(len(self.categories), 1), width), dtype=bool)
        for row, chosen in enumerate(self.categories):
            table[row, np.asarray(chosen, dtype=np.int64)] = True
        return Forest(
            feature=np.asarray(self.feature, dtype=np.int64),
            threshold=np.asarray(self.threshold, dtype=np.float64),
            category_row=np.asarray(self.category_row, dtype=np.int64),
            left_categories=table,
            left=np.asarray(self.left, dtype=np.int64),
            right=np.asarray(self.right, dtype=np.int64),
            value=np.asarray(self.value, dtype=np.float64),
            roots=np.asarray(self.roots, dtype=np.int64),
            depth=self.depth,
        )
