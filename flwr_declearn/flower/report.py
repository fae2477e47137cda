"""Per-round progress, final summary, results JSON and learning-curve PNG of a run.

Used by the example apps' ServerApps; matplotlib is imported only to draw the PNG.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from logging import INFO
from pathlib import Path
from typing import Any

from flwr.common import log

EvaluateFn = Callable[[int, dict[str, Any]], tuple[float, dict[str, Any]]]


class RunReport:
    """Record the global model's test metrics round by round, then write the results.

    Parameters
    ----------
    name:
        Name of the example (in the JSON, the plot title and the summary).
    result_file:
        Path of the results JSON; the learning curve goes next to it (same name, `.png`).
        A relative path is taken from the ServerApp's working directory.
    config:
        The run config, saved in the JSON.
    """

    def __init__(self, name: str, result_file: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.json_path = Path(result_file).expanduser().resolve()
        self.png_path = self.json_path.with_suffix(".png")
        self.config = {key: _plain(val) for key, val in config.items()}
        self.rounds: list[dict[str, float]] = []
        self.extra: dict[str, Any] = {}
        """Other results, saved in the JSON."""
        self.started = time.perf_counter()

    def record(self, server_round: int, loss: float, accuracy: float) -> None:
        """Log and save the test loss and accuracy of the global model after `server_round`."""
        log(
            INFO,
            "round %d: test accuracy %.4f, test loss %.4f (%.1fs)",
            server_round,
            accuracy,
            loss,
            time.perf_counter() - self.started,
        )
        self.rounds.append({"round": server_round, "accuracy": accuracy, "loss": loss})
        self._write_json()

    def recording(self, evaluate: EvaluateFn) -> EvaluateFn:
        """Wrap a server-side `evaluate(server_round, weights) -> (loss, metrics)` so that
        every round it evaluates is recorded (`metrics` must hold "accuracy")."""

        def recorded(server_round: int, weights: dict[str, Any]) -> tuple[float, dict[str, Any]]:
            loss, metrics = evaluate(server_round, weights)
            self.record(server_round, loss, metrics["accuracy"])
            return loss, metrics

        return recorded

    def finish(self, train_metrics: Mapping[int, Mapping[str, Any]] | None = None) -> None:
        """Write the JSON and the learning curve, and log the summary.

        `train_metrics` (by round) adds the clients' aggregated training metrics,
        e.g. "train_loss", to the rounds (Flower's `Result.train_metrics_clientapp`).
        """
        for entry in self.rounds:
            for key, value in (train_metrics or {}).get(int(entry["round"]), {}).items():
                entry[key] = float(value)
        self._write_json()
        self._plot()
        best = max(self.rounds, key=lambda entry: entry["accuracy"])
        log(
            INFO,
            "Summary of %s: %d rounds in %.1fs, final test accuracy %.4f (round 0: %.4f, "
            "best %.4f at round %d); results: %s; learning curve: %s",
            self.name,
            self.rounds[-1]["round"],
            time.perf_counter() - self.started,
            self.rounds[-1]["accuracy"],
            self.rounds[0]["accuracy"],
            best["accuracy"],
            best["round"],
            self.json_path,
            self.png_path,
        )

    def _write_json(self) -> None:
        final = self.rounds[-1] if self.rounds else {}
        results = {
            "example": self.name,
            "config": self.config,
            "rounds": self.rounds,
            "final_accuracy": final.get("accuracy"),
            "wall_time_s": round(time.perf_counter() - self.started, 2),
            **self.extra,
        }
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        self.json_path.write_text(json.dumps(results, indent=1))

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        rounds = [entry["round"] for entry in self.rounds]
        fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(9, 3.5))
        ax_acc.plot(rounds, [entry["accuracy"] for entry in self.rounds], marker="o")
        ax_acc.set(xlabel="round", ylabel="test accuracy", ylim=(0, 1))
        ax_loss.plot(rounds, [entry["loss"] for entry in self.rounds], marker="o", label="test")
        train = [(e["round"], e["train_loss"]) for e in self.rounds if "train_loss" in e]
        if train:
            ax_loss.plot(*zip(*train, strict=True), marker=".", label="train (clients)")
        ax_loss.set(xlabel="round", ylabel="loss")
        ax_loss.legend()
        for axis in (ax_acc, ax_loss):
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.suptitle(self.name)
        fig.tight_layout()
        fig.savefig(self.png_path, dpi=100)
        plt.close(fig)


def _plain(value: Any) -> Any:
    """A JSON-able copy of a run-config value."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value if isinstance(value, bool | int | float | str) else str(value)
