"""Flower App factories: a ClientApp and a ServerApp built on flwr_declearn's bricks.

`make_client_app(client_fn)` returns a `ClientApp` whose train and evaluate
handlers run a `DeclearnClient`. It answers both Message API requests
(`DeclearnMessageStrategy`, or Flower's own message strategies) and legacy
requests (`DeclearnStrategy` through Flower's compatibility layer).

`handle_train(client, message, context)` and `handle_evaluate(...)` are those
handlers, for a user who keeps their own `@app.train()` / `@app.evaluate()`
functions and calls ours inside them.

`make_server_app(strategy_fn)` returns a `ServerApp` that builds a strategy
from the run's Context and runs it: a `DeclearnMessageStrategy` through its
`start` method, a `DeclearnStrategy` through Flower's legacy server loop.
"""

from __future__ import annotations

from collections.abc import Callable
from logging import INFO
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.client.message_handler.message_handler import handle_legacy_message_from_msgtype
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import Mod
from flwr.common import log
from flwr.server import ServerAppComponents, ServerConfig
from flwr.serverapp import Grid, ServerApp

from flwr_declearn.flower import wire
from flwr_declearn.flower._records import (
    ARRAYS_KEY,
    DECLEARN_KEY,
    METRICS_KEY,
    NUM_EXAMPLES_KEY,
    arrays_to_record,
    config_of,
    get_record,
    record_to_arrays,
)
from flwr_declearn.flower.client import DeclearnClient
from flwr_declearn.flower.message_strategy import DeclearnMessageStrategy
from flwr_declearn.flower.protocol import is_internal_key
from flwr_declearn.flower.strategy import DeclearnStrategy

__all__ = ["handle_evaluate", "handle_train", "make_client_app", "make_server_app"]

ClientFn = Callable[[Context], DeclearnClient]
StrategyFn = Callable[[Context], DeclearnStrategy | DeclearnMessageStrategy]

_LEGACY_KEYS = ("fitins.parameters", "evaluateins.parameters")


def _is_legacy(message: Message) -> bool:
    return any(key in message.content for key in _LEGACY_KEYS)


def handle_train(
    client: DeclearnClient, message: Message, context: Context | None = None
) -> Message:
    """Answer a train request with `client`: Message API (see `_records`) or legacy.

    Call it from your own ClientApp to keep your `@app.train()` function,
    your data pipeline and extra metrics::

        app = ClientApp()

        @app.train()
        def train(message: Message, context: Context) -> Message:
            model = TorchModel(Net(), loss=torch.nn.CrossEntropyLoss(reduction="none"))
            client = DeclearnClient(model, my_dataloader, context)  # any accepted data
            reply = handle_train(client, message, context)
            reply.content["metrics"]["my-metric"] = 1.0  # add what you like
            return reply

    Parameters
    ----------
    client:
        The client that trains (its Optimizer state lives in its Context).
    message:
        The train request.
    context:
        The node's Context; only needed for legacy (`DeclearnStrategy`)
        requests, and defaults to `client.context`.

    Raises
    ------
    RejectedMessage
        If the request is invalid (weights, configs, aux-vars); Flower then
        answers the server with an error reply.
    """
    if _is_legacy(message):
        return _handle_legacy(client, message, context)
    weights = client.weights_from_named(
        record_to_arrays(get_record(message.content, ARRAYS_KEY, ArrayRecord))
    )
    out = client.train(weights, dict(config_of(message.content)))
    metrics: dict[str, Any] = {NUM_EXAMPLES_KEY: out.num_examples}
    aux = out.metrics.get(wire.KEY_AUX_VAR)
    metrics.update(
        {
            key: val
            for key, val in out.metrics.items()
            if not is_internal_key(key)
            and isinstance(val, int | float)
            and not isinstance(val, bool)
        }
    )
    content = RecordDict(
        {
            ARRAYS_KEY: arrays_to_record(out.weights.pack()),
            METRICS_KEY: MetricRecord(metrics),
        }
    )
    if isinstance(aux, bytes):
        content[DECLEARN_KEY] = ConfigRecord({wire.KEY_AUX_VAR: aux})
    return Message(content, reply_to=message)


def handle_evaluate(
    client: DeclearnClient, message: Message, context: Context | None = None
) -> Message:
    """Answer an evaluate request with `client` (Message API or legacy); see `handle_train`."""
    if _is_legacy(message):
        return _handle_legacy(client, message, context)
    weights = client.weights_from_named(
        record_to_arrays(get_record(message.content, ARRAYS_KEY, ArrayRecord))
    )
    _, n_samples, results = client.evaluate_weights(weights, dict(config_of(message.content)))
    record = MetricRecord({NUM_EXAMPLES_KEY: n_samples, **results})
    return Message(RecordDict({METRICS_KEY: record}), reply_to=message)


def _handle_legacy(client: DeclearnClient, message: Message, context: Context | None) -> Message:
    context = context if context is not None else client.context
    if context is None:
        raise ValueError("Answering a legacy (DeclearnStrategy) request needs the node's Context.")
    return handle_legacy_message_from_msgtype(lambda _: client.to_client(), message, context)


def make_client_app(client_fn: ClientFn, *, mods: list[Mod] | None = None) -> ClientApp:
    """Return a ClientApp running the `DeclearnClient` that `client_fn(context)` builds.

    The client is rebuilt for every message (as Flower does); its Optimizer
    state persists in `context.state`. Both Message API and legacy
    (`DeclearnStrategy`) requests are served.

    Parameters
    ----------
    client_fn:
        Builds the client from the node's Context (e.g. loading the partition
        `context.node_config["partition-id"]`).
    mods:
        Optional Flower mods applied to every message.
    """
    app = ClientApp(mods=mods)

    @app.train()
    def train(message: Message, context: Context) -> Message:
        return handle_train(client_fn(context), message, context)

    @app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        return handle_evaluate(client_fn(context), message, context)

    return app


def make_server_app(
    strategy_fn: StrategyFn,
    *,
    num_rounds: int | None = None,
    round_timeout: float | None = None,
) -> ServerApp:
    """Return a ServerApp running the strategy that `strategy_fn(context)` builds.

    Parameters
    ----------
    strategy_fn:
        Builds a `DeclearnMessageStrategy` or a `DeclearnStrategy` from the
        ServerApp's Context (e.g. reading `context.run_config`).
    num_rounds:
        Number of rounds; defaults to the run config's "num-server-rounds" (else 3).
    round_timeout:
        Seconds to wait for the clients' replies in each round (None: the
        strategy's own `round_timeout`; for the message strategy, one hour if
        that is None too).
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = strategy_fn(context)
        rounds = num_rounds
        if rounds is None:
            rounds = int(context.run_config.get("num-server-rounds", 3))  # type: ignore[arg-type]
        if isinstance(strategy, DeclearnMessageStrategy):
            strategy.start(
                grid,
                num_rounds=rounds,
                timeout=round_timeout,
            )
        elif isinstance(strategy, DeclearnStrategy):
            timeout = strategy.round_timeout if round_timeout is None else round_timeout
            components = ServerAppComponents(
                strategy=strategy,
                config=ServerConfig(num_rounds=rounds, round_timeout=timeout),
            )
            ServerApp(server_fn=lambda _: components)(grid, context)
        else:
            raise TypeError(
                "strategy_fn must return a DeclearnMessageStrategy or a DeclearnStrategy, "
                f"not {type(strategy).__name__}."
            )
        log(INFO, "flwr_declearn: finished %d round(s).", rounds)

    return app
