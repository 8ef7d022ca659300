#!/usr/bin/env python
"""statsforecast's classical models on the forecasting benchmark's splits, as `sluice-bench
forecast` scores its own: every test line is a series whose last `prediction_length` points are
scored and whose model input is the rest (SageMaker DeepAR's test convention, metadata.json's
`test_convention`), each fitted on its own input.

Models: AutoETS, AutoARIMA and AutoTheta with the frequency's season (24 hourly, 12 monthly),
MSTL over the daily and weekly cycles of hourly data (the yearly one of monthly data) with an
AutoETS trend, and SeasonalNaive. Quantiles 0.1 ... 0.9 come from each model's prediction
intervals (levels 20, 40, 60 and 80: 0.1 and 0.9 are the 80 % interval's bounds), the median is
the point forecast. mean_wQuantileLoss is GluonTS's Evaluator's: per quantile, twice the pinball
loss summed over every scored point divided by the sum of |target| over them, then the mean over
the nine quantiles.

usage: statsforecast_peer.py --data DIR/DATASET --out RESULT.json [--models AutoETS,MSTL]
                             [--time-limit SECONDS]
The result maps each model to {"mean_wQuantileLoss", "fit_cpu_s", "fit_wall_s"}, or to
{"timed_out_after_s"} for a model whose fits and forecasts did not finish within the time limit
(wall clock, per model; AutoARIMA with a 24-hour season over 4,000-hour series takes hours). The
models are deterministic: one run stands for every seed.
"""

import argparse
import json
import math
import os
import resource
import signal
import time

import numpy as np
import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import MSTL, AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
LEVELS = [20, 40, 60, 80]
# metadata.json's freq as pandas writes it for the series' timestamps.
PANDAS_FREQ = {"h": "h", "H": "h", "1h": "h", "M": "MS", "D": "D", "1d": "D", "W": "W"}
SEASON = {"h": 24, "MS": 12, "D": 7, "W": 52}
# MSTL's cycles: the day and the week of hourly data, the year of monthly data.
CYCLES = {"h": [24, 168], "MS": [12], "D": [7, 365], "W": [52]}


def cpu_seconds():
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def model(name, freq):
    season = SEASON[freq]
    if name == "AutoETS":
        return AutoETS(season_length=season)
    if name == "AutoARIMA":
        return AutoARIMA(season_length=season)
    if name == "AutoTheta":
        return AutoTheta(season_length=season)
    if name == "MSTL":
        return MSTL(season_length=CYCLES[freq], trend_forecaster=AutoETS(model="ZZN"))
    if name == "SeasonalNaive":
        return SeasonalNaive(season_length=season)
    raise SystemExit(f"unknown model {name!r}")


class TimeLimit(Exception):
    pass


def on_alarm(signum, frame):
    raise TimeLimit()


def number(value):
    return math.nan if value is None or value == "NaN" else float(value)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--models", default="AutoETS,AutoARIMA,AutoTheta,MSTL,SeasonalNaive")
    parser.add_argument("--time-limit", type=int, default=0, help="seconds per model (0: none)")
    args = parser.parse_args()
    meta = json.load(open(os.path.join(args.data, "metadata.json")))
    pl = int(meta["prediction_length"])
    freq = PANDAS_FREQ[meta["freq"]]
    frames, actuals, filled = [], {}, 0
    with open(os.path.join(args.data, "test.jsonl")) as lines:
        for index, line in enumerate(lines):
            entry = json.loads(line)
            target = np.array([number(v) for v in entry["target"]], dtype=float)
            history, scored = target[:-pl], target[-pl:]
            missing = np.isnan(history)
            if missing.any():
                # statsforecast takes no missing values: interpolate them (and count them).
                filled += int(missing.sum())
                history = pd.Series(history).interpolate(limit_direction="both").to_numpy()
            uid = f"line-{index}"
            frames.append(pd.DataFrame({
                "unique_id": uid,
                "ds": pd.date_range(pd.Timestamp(entry["start"]), periods=len(history), freq=freq),
                "y": history,
            }))
            actuals[uid] = scored
    df = pd.concat(frames, ignore_index=True)
    results = {"dataset": meta["dataset"], "lines": len(actuals), "filled_missing": filled}
    for name in args.models.split(","):
        cpu, wall = cpu_seconds(), time.perf_counter()
        sf = StatsForecast(models=[model(name, freq)], freq=freq, n_jobs=1)
        signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(args.time_limit)
        try:
            forecast = sf.forecast(df=df, h=pl, level=LEVELS)
        except TimeLimit:
            results[name] = {"timed_out_after_s": args.time_limit,
                             "fit_cpu_s": cpu_seconds() - cpu}
            print(f"{meta['dataset']} {name}: not finished in {args.time_limit} s", flush=True)
            continue
        finally:
            signal.alarm(0)
        fit_cpu, fit_wall = cpu_seconds() - cpu, time.perf_counter() - wall
        column = [c for c in forecast.columns if c not in ("unique_id", "ds") and "-lo-" not in c and "-hi-" not in c][0]
        loss = {q: 0.0 for q in QUANTILES}
        scale = 0.0
        for uid, rows in forecast.groupby("unique_id", sort=False):
            y = actuals[uid]
            keep = ~np.isnan(y)
            scale += float(np.abs(y[keep]).sum())
            for q in QUANTILES:
                if q == 0.5:
                    predicted = rows[column].to_numpy()
                else:
                    level = round(abs(q - 0.5) * 200)
                    side = "lo" if q < 0.5 else "hi"
                    predicted = rows[f"{column}-{side}-{level}"].to_numpy()
                error = y[keep] - predicted[keep]
                loss[q] += float(np.sum(np.abs(error * ((y[keep] <= predicted[keep]) - q))))
        weighted = [2.0 * loss[q] / scale for q in QUANTILES]
        results[name] = {
            "mean_wQuantileLoss": float(np.mean(weighted)),
            "wQuantileLoss": dict(zip([str(q) for q in QUANTILES], weighted)),
            "fit_cpu_s": fit_cpu,
            "fit_wall_s": fit_wall,
        }
        print(f"{meta['dataset']} {name}: mean_wQuantileLoss {results[name]['mean_wQuantileLoss']:.4f} "
              f"({fit_cpu:.1f} CPU s)", flush=True)
    with open(args.out, "w") as out:
        json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
