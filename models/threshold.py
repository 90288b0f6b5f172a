"""The alarm threshold that maximises F1 on labelled scores.

An alarm is raised when score >= threshold. Every distinct score is a candidate (a
threshold between two neighbouring scores gives the same alarms as the higher one);
among the thresholds with the best F1 the highest is chosen (the fewest alarms).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Threshold:
    threshold: float
    f1: float
    precision: float
    recall: float


def precision_recall_f1(alarms: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 of boolean alarms against boolean labels (0 when undefined)."""
    alarms = np.asarray(alarms, dtype=bool)
    labels = np.asarray(labels, dtype=bool)
    tp = int(np.sum(alarms & labels))
    fp = int(np.sum(alarms & ~labels))
    fn = int(np.sum(~alarms & labels))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return precision, recall, f1


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> Threshold:
    """The threshold (one of the scores) whose alarms score >= threshold have the best F1."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    if scores.shape != labels.shape or scores.ndim != 1 or not len(scores):
        raise ValueError("scores and labels must be non-empty 1-d arrays of the same length")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    positives = int(labels.sum())
    if positives == 0:
        raise ValueError("no positive label: F1 is undefined for every threshold")
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], labels[order]
    tp = np.cumsum(hits)
    alarms = np.arange(1, len(ranked) + 1)
    # The last index of each run of equal scores: alarms at that threshold include all ties.
    last = np.r_[ranked[1:] != ranked[:-1], True]
    tp, alarms, candidates = tp[last], alarms[last], ranked[last]
    f1 = 2 * tp / (alarms + positives)
    best = int(np.argmax(f1))  # the first maximum: the highest threshold
    precision = float(tp[best] / alarms[best])
    recall = float(tp[best] / positives)
    return Threshold(float(candidates[best]), float(f1[best]), precision, recall)
