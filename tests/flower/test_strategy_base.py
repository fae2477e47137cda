"""Both strategies share one base: the same hooks, options and checks on each Flower API."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from flwr.app import Error, Message, MetricRecord, RecordDict

from flwr_declearn.flower import DeclearnMessageStrategy, DeclearnStrategy
from flwr_declearn.flower._records import arrays_to_record
from flwr_declearn.optimizer import Optimizer

from .conftest import LinearModel


def reply(node: int, content: RecordDict) -> Message:
    msg = Message(content, reply_to=Message(RecordDict(), dst_node_id=node, message_type="train"))
    msg.metadata.__dict__["_src_node_id"] = node
    return msg


def train_reply(node: int, value: float, count: int, **metrics: float) -> Message:
    weights = {"bias": np.full(1, value, "float32"), "kernel": np.full((3, 1), value, "float32")}
    record = MetricRecord({"num-examples": count, **metrics})
    return reply(node, RecordDict({"arrays": arrays_to_record(weights), "metrics": record}))


def message_strategy(**kwargs: Any) -> DeclearnMessageStrategy:
    return DeclearnMessageStrategy(
        model=LinearModel(3, dtype="float32"), client_optimizer=Optimizer(0.1), **kwargs
    )


def test_message_strategy_calls_the_users_metric_aggregation_functions() -> None:
    seen: list[Any] = []

    def fit_metrics(results: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        seen.extend(results)
        return {"clients": len(results)}

    strategy = message_strategy(
        fit_metrics_aggregation_fn=fit_metrics,
        evaluate_metrics_aggregation_fn=lambda results: {"n": sum(n for n, _ in results)},
    )
    arrays, metrics = strategy.aggregate_train(
        1, [train_reply(2, 0.5, 30, loss=2.0), train_reply(1, 0.1, 10, loss=1.0)]
    )
    assert arrays is not None and dict(metrics) == {"clients": 1.0 * 2}
    assert seen == [(10, {"loss": 1.0}), (30, {"loss": 2.0})]  # client-id order
    evaluation = [
        reply(n, RecordDict({"metrics": MetricRecord({"num-examples": c, "accuracy": 0.5})}))
        for n, c in ((1, 4), (2, 6))
    ]
    assert dict(strategy.aggregate_evaluate(1, evaluation)) == {"n": 10.0}


def test_message_strategy_can_refuse_rounds_with_failures(caplog: pytest.LogCaptureFixture) -> None:
    request = Message(RecordDict(), dst_node_id=3, message_type="train")
    failed = Message(Error(code=0, reason="boom"), reply_to=request)
    failed.metadata.__dict__["_src_node_id"] = 3
    good = [train_reply(1, 0.1, 10), train_reply(2, 0.2, 10)]
    with caplog.at_level(logging.WARNING, logger="flwr"):
        assert message_strategy(accept_failures=False).aggregate_train(1, [*good, failed]) == (
            None,
            None,
        )
    assert "failures occurred; not aggregating" in caplog.text
    assert message_strategy().aggregate_train(1, [*good, failed])[0] is not None


@pytest.mark.parametrize("cls", [DeclearnStrategy, DeclearnMessageStrategy])
def test_shared_options_are_checked_on_both_strategies(cls: type) -> None:
    base = {"model": LinearModel(3), "client_optimizer": Optimizer(0.1)}
    with pytest.raises(ValueError, match="keep_checkpoints"):
        cls(**base, keep_checkpoints=0)
    with pytest.raises(ValueError, match="on_checkpoint_error"):
        cls(**base, on_checkpoint_error="ignore")
    with pytest.raises(ValueError, match="on_round_error"):
        cls(**base, on_round_error="retry")
    with pytest.raises(ValueError, match="round_timeout"):
        cls(**base, round_timeout=-1.0)
    with pytest.raises(KeyError):
        cls(**base, aggregator="krum")
    with pytest.raises(TypeError, match="Unexpected keyword argument"):
        cls(**base, fraction_fitt=0.5)
    strategy = cls(**base, aggregator=("trimmed-mean", {"beta": 0.2}), limits={"max_examples": 5})
    assert strategy.core.aggregator.get_config() == {"beta": 0.2}
    assert strategy.core.limits.max_examples == 5


def eval_reply(node: int, count: int, **metrics: float) -> Message:
    record = MetricRecord({"num-examples": count, **metrics})
    return reply(node, RecordDict({"metrics": record}))


def failed_reply(node: int) -> Message:
    request = Message(RecordDict(), dst_node_id=node, message_type="evaluate")
    failed = Message(Error(code=0, reason="boom"), reply_to=request)
    failed.metadata.__dict__["_src_node_id"] = node
    return failed


def test_message_strategy_evaluation_honours_accept_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    replies = [eval_reply(1, 4, accuracy=0.5), eval_reply(2, 12, accuracy=1.0), failed_reply(3)]
    with caplog.at_level(logging.WARNING, logger="flwr"):
        assert message_strategy(accept_failures=False).aggregate_evaluate(1, replies) is None
    assert "node 3 failed evaluation: boom" in caplog.text
    assert "failures occurred; not aggregating" in caplog.text
    accepted = message_strategy().aggregate_evaluate(1, replies)
    assert accepted is not None and dict(accepted) == {"accuracy": 0.875}


def test_evaluation_hides_internal_entries_and_skips_repeated_or_unreadable_replies(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Any] = []

    def evaluate_metrics(results: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        seen.extend(results)
        return {"n": sum(n for n, _ in results)}

    strategy = message_strategy(evaluate_metrics_aggregation_fn=evaluate_metrics)
    replies = [
        eval_reply(2, 6, accuracy=1.0, **{"declearn.round": 1.0}),
        eval_reply(1, 4, accuracy=0.5),
        eval_reply(2, 600, accuracy=0.0),  # the same node again: dropped
        reply(3, RecordDict()),  # no metrics record
    ]
    with caplog.at_level(logging.WARNING, logger="flwr"):
        result = strategy.aggregate_evaluate(1, replies)
    assert result is not None and dict(result) == {"n": 10.0}
    assert seen == [(4, {"accuracy": 0.5}), (6, {"accuracy": 1.0})]
    assert "client 2: a second result in this round" in caplog.text
    assert "skipping the evaluation of client 3" in caplog.text
