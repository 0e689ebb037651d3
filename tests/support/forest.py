"""A two-tree forest small enough to follow by hand, as arrays and as Spark prints it."""

from __future__ import annotations

import numpy as np

from tweetops.model.arrays import LEAF, Forest

# tree 0: x0 in {0, 2} -> 1.0; else x1 <= 5.0 -> 2.0, else 3.0.   tree 1: a single leaf 10.0
FOREST = Forest(
    feature=np.array([0, LEAF, 1, LEAF, LEAF, LEAF]),
    threshold=np.array([0.0, 0.0, 5.0, 0.0, 0.0, 0.0]),
    category_row=np.array([0, -1, -1, -1, -1, -1]),
    left_categories=np.array([[True, False, True, False]]),
    left=np.array([1, 1, 3, 3, 4, 5]),
    right=np.array([2, 1, 4, 3, 4, 5]),
    value=np.array([0.0, 1.0, 0.0, 2.0, 3.0, 10.0]),
    roots=np.array([0, 5]),
    depth=2,
)
# FOREST as Spark's RandomForestRegressionModel.toDebugString prints it
DESCRIPTION = """RandomForestRegressionModel: uid=rfr_0123, numTrees=2, numFeatures=2
  Tree 0 (weight 1.0):
    If (feature 0 in {0.0,2.0})
     Predict: 1.0
    Else (feature 0 not in {0.0,2.0})
     If (feature 1 <= 5.0)
      Predict: 2.0
     Else (feature 1 > 5.0)
      Predict: 3.0
  Tree 1 (weight 1.0):
    Predict: 10.0
"""
