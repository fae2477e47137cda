"""A plain Flower ClientApp answering the declearn train layout: it echoes the weights, slowly."""

from __future__ import annotations

import time
from pathlib import Path

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Mark the start of training, wait `train-seconds`, send the weights back unchanged."""
    marker_dir = str(context.run_config["marker-dir"])
    if marker_dir:
        config = msg.content["config"]
        name = f"train-{context.node_id}-{config.get('declearn.round', 0)}"
        (Path(marker_dir) / name).write_text("started")
    time.sleep(float(context.run_config["train-seconds"]))  # type: ignore[arg-type]
    content = RecordDict(
        {"arrays": msg.content["arrays"], "metrics": MetricRecord({"num-examples": 10})}
    )
    return Message(content, reply_to=msg)
