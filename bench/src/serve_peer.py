"""The peer of `sluice bench serve`: GluonTS's PyTorch DeepAR with the same architecture as
sluice's model (2 x 40 LSTM, Student-t, context = prediction length = 24), trained briefly on the
same series, behind a minimal Python HTTP server (http.server, one thread per connection) that
speaks SageMaker DeepAR's request and response. Usage: python this.py TRAIN.jsonl PORT_FILE EPOCHS
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json
import sys
import warnings

warnings.filterwarnings("ignore")

import numpy as np
import pandas as pd
import torch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gluonts.dataset.common import ListDataset
from gluonts.torch import DeepAREstimator

torch.set_num_threads(1)
train_path, port_file, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
FREQ = "h"


def dataset(instances):
    return ListDataset(
        [{"start": pd.Period(i["start"], freq=FREQ), "target": np.asarray(i["target"], dtype=np.float32)}
         for i in instances],
        freq=FREQ,
    )


with open(train_path) as f:
    rows = [json.loads(line) for line in f if line.strip()]
estimator = DeepAREstimator(
    freq=FREQ, prediction_length=24, context_length=24, num_layers=2, hidden_size=40,
    dropout_rate=0.1, lr=1e-3, batch_size=32, num_batches_per_epoch=10, num_parallel_samples=100,
    trainer_kwargs=dict(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, logger=False,
                        default_root_dir=os.path.dirname(os.path.abspath(port_file))),
)
predictor = estimator.train(dataset(rows))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.send(200, {"status": "ok"})

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        configuration = request.get("configuration") or {}
        quantiles = configuration.get("quantiles", ["0.1", "0.5", "0.9"])
        samples = int(configuration.get("num_samples", 100))
        predictions = []
        for forecast in predictor.predict(dataset(request["instances"]), num_samples=samples):
            predictions.append({
                "mean": forecast.mean.tolist(),
                "quantiles": {q: forecast.quantile(float(q)).tolist() for q in quantiles},
            })
        self.send(200, {"predictions": predictions})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".partial", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".partial", port_file)
server.serve_forever()
