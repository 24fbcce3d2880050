"""The `asym` command: one sub-command per DAG step. Snakemake rules and DVC stages call these;
each step finds its inputs and outputs in asym.layout, so no path is spelt twice."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from asym.config import DEFAULT_PARAMS, PARAMS_VARIABLE
from asym.data import formats
from asym.data.protocols import GENDER_PROTOCOLS, OPTIMISM_PROTOCOLS
from asym.errors import ConfigError, DataError
from asym.models import registry

if TYPE_CHECKING:
    from asym.config import Params
    from asym.layout import Layout


def _params(args: argparse.Namespace) -> Params:
    from asym.config import load_params

    return load_params(args.params)


def _layout(p: Params) -> Layout:
    from asym.layout import Layout

    return Layout.of(p)


def cmd_synth(args: argparse.Namespace) -> None:
    from asym.data.fetch import demo_config, write_demo

    p = _params(args)
    cfg = demo_config(args.format, p.synth)
    if args.n_samples:
        cfg["n_samples"] = args.n_samples
    seed = args.seed if args.seed is not None else p.synth.seed
    layout = args.layout or formats.get(args.format).demo_layouts[0]
    write_demo(args.format, Path(args.output), cfg, seed, layout)
    print(f"wrote demo {args.format} ({layout} layout) to {args.output}")


def cmd_fetch(args: argparse.Namespace) -> None:
    from asym.data.fetch import fetch_dataset
    from asym.io import write_json

    p = _params(args)
    layout = _layout(p)
    out = Path(layout.raw_dir(args.dataset))
    prov = fetch_dataset(args.dataset, p.dataset(args.dataset), p.synth, out, p.root / ".cache" / "downloads", p.resolve)
    write_json(layout.provenance(args.dataset), prov)
    print(f"{args.dataset}: {prov['source']} -> {out}")


def cmd_convert(args: argparse.Namespace) -> None:
    from asym.data.convert import convert
    from asym.io import read_json

    p = _params(args)
    layout = _layout(p)
    if args.dataset is None and (args.format is None or args.input is None or args.output is None):
        raise ConfigError("convert needs --dataset, or --format, --input and --output")
    ds = p.dataset(args.dataset) if args.dataset else None
    src = Path(args.input) if args.input else Path(layout.raw_dir(args.dataset))
    out = Path(args.output) if args.output else Path(layout.parquet(args.dataset))
    prov_file = src.parent / f"{src.name}.provenance.json"
    prov = read_json(prov_file) if prov_file.is_file() else {}
    subjects = Path(args.subjects) if args.subjects else (p.resolve(ds.subjects) if ds and ds.subjects else None)
    fmt = args.format or ds.format
    card = convert(fmt, src, out, p.readers, subjects, provenance=prov, dataset=args.dataset,
                   frame_rates=ds.frame_rates if ds else None)
    print(f"{card['dataset']}: {card['n_samples']} vlogs ({card['n_depressed']} depressed) -> {out}")


def _for_optimism(p: Params, args: argparse.Namespace) -> Params:
    """The params as a study's runs under --protocol read them (asym.config.Params.for_optimism, or
    for_cross_gender for a by-gender protocol)."""
    protocol = getattr(args, "protocol", None)
    if not protocol:
        return p
    return p.for_cross_gender(protocol) if protocol in GENDER_PROTOCOLS else p.for_optimism(protocol)


def cmd_split(args: argparse.Namespace) -> None:
    from asym.data import protocols
    from asym.data.parquet import read_samples
    from asym.data.splits import make_split, split_description
    from asym.io import atomic_path, write_json

    p = _for_optimism(_params(args), args)
    layout = _layout(p)
    data = Path(layout.parquet(args.dataset))
    table = read_samples(data)
    ds, protocol = p.dataset(args.dataset), p.protocol(args.dataset)
    reads_csv = protocols.get(protocol).split_csv           # the protocol's row says whether it reads one
    csv = p.resolve(ds.split_csv) if reads_csv and ds.split_csv else None
    split = make_split(table, protocol, p.split, data, csv)
    with atomic_path(layout.split_csv(args.dataset)) as tmp:
        split.to_csv(tmp, index=False)
    description = split_description(split, bool(table.meta.get("subjects_supplied")), protocol)
    write_json(layout.split_json(args.dataset), description)
    print(f"{args.dataset} ({protocol}): {description['n_partitions']} partition(s), {description['per_fold']} "
          f"(subject-independent: {description['subject_independent']})")


def cmd_train(args: argparse.Namespace) -> None:
    p = _for_optimism(_params(args), args)
    from asym.train.job import env_threads

    entry = registry.get(args.model)
    if args.entry_digest and args.entry_digest != entry.digest():
        raise ConfigError(f"the registry entry of {args.model!r} changed since dvc.yaml was written: run `asym dvc-yaml`")
    env_threads(p.train.threads)
    from asym.grid import Run
    from asym.train.job import train_job

    observers = []
    # Live runs are keyed like the track step's (<dataset>/<model>/seed<k>): the studies' runs
    # share those keys with the main grid's, so only the main grid logs live (the studies reach
    # MLflow as the report's protocol_optimism and cross_gender tables).
    if not args.protocol and p.mlflow.live:
        from asym.tracking.track import LiveRun

        observers.append(LiveRun(p, args.dataset, args.model))
    seeds = args.seeds if args.seeds else p.seeds
    done = train_job(p, args.dataset, args.model, seeds, observers=observers)
    for s in done:
        print(f"{Run(args.dataset, args.model, s['seed']).key}: best epoch {s['best_epoch']}, "
              f"valid selection {s['best_valid_selection']}, {s['epoch_time_s']:.2f} s/epoch")
    if len(done) < len(seeds):
        print(f"{args.dataset}/{args.model}: {len(seeds) - len(done)} seed(s) already complete, kept")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from asym.evaluate import evaluate_all, evaluate_run
    from asym.grid import Run

    payloads = [evaluate_run(Path(args.run))] if args.run else evaluate_all(_params(args))
    for m in payloads:
        t = m["test"]
        print(f"{Run(m['dataset'], m['model'], m['seed']).key}: test acc {t['accuracy']:.3f} F1 {t['f1']:.3f}")


def cmd_report(args: argparse.Namespace) -> None:
    from asym.report.build import make_report

    p = _params(args)
    files = make_report(p)
    print(f"report: {len(files)} files -> {p.path_of('reports')}")


def cmd_cost(args: argparse.Namespace) -> None:
    p = _params(args)
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    from asym.train.job import env_threads

    env_threads(args.threads or p.cost.threads)       # before anything imports numba
    import pandas as pd

    from asym.cost import measure
    from asym.report.cost import table_outputs, write_table

    rows = pd.DataFrame(measure(p, models=args.models, threads=args.threads))
    out = table_outputs(_layout(p))
    write_table(rows, p, out)
    print(f"cost: {rows['model'].nunique()} models x {rows['dataset'].nunique()} datasets x "
          f"{rows['minutes'].nunique()} vlog lengths -> {out['cost_md']}")


def cmd_cost_plot(args: argparse.Namespace) -> None:
    from asym.report.cost import plot_cost, plot_inputs, plot_output

    layout = _layout(_params(args))
    inputs = plot_inputs(layout)
    for path in inputs.values():
        if not path.is_file():
            raise ConfigError(f"{path} is not there: `asym cost` writes the cost table, `asym report` the summary")
    points = plot_cost(inputs["cost_csv"], inputs["summary_csv"], plot_output(layout))
    print(f"cost plot: {len(points)} models' F1 against MACs -> {plot_output(layout)}")


def cmd_track(args: argparse.Namespace) -> None:
    from asym.tracking.track import track_all

    p = _params(args)
    record = track_all(p)
    print(f"mlflow: {len(record)} runs in experiment {p.mlflow.experiment!r} ({p.mlflow.tracking_uri})")


def cmd_robustness(args: argparse.Namespace) -> None:
    """Every trained run on its test fold(s) under the perturbations of `robustness` in --params."""
    from asym.train.job import env_threads, pick_device

    p = _params(args)
    env_threads(p.train.threads)
    import torch

    torch.set_num_threads(p.train.threads)
    from asym.robustness import run_robustness

    files = run_robustness(p, args.device or pick_device(p.train.device))
    print(f"robustness: {len(files)} files -> {p.path_of('reports')}")


def cmd_predict(args: argparse.Namespace) -> None:
    """A trained run (or every seed of a model) applied to a release or an `asym extract` output."""
    from asym.train.job import pick_device

    p = _params(args) if Path(args.params).is_file() else None
    if p is not None:
        import torch

        torch.set_num_threads(p.train.threads)
    from asym.inference.predict import predict_path

    device = args.device or (pick_device(p.train.device) if p is not None else "cpu")
    frame = predict_path(Path(args.model), Path(args.input), Path(args.output), device)
    print(f"predicted {len(frame)} vlog(s) -> {args.output} (a research model, not a diagnostic tool)")


def cmd_extract(args: argparse.Namespace) -> None:
    """Videos (or videos + audio files) -> a D-Vlog release of their eGeMAPS and landmark features."""
    from asym.config import load_extract
    from asym.inference.extract import FILL_RULE, extract

    report = extract([Path(v) for v in args.video], Path(args.output), load_extract(args.params),
                     [Path(a) for a in args.audio] if args.audio else None, Path(args.labels) if args.labels else None)
    faceless = sum(v["seconds_without_face"] for v in report["vlogs"].values())
    seconds = sum(v["seconds"] for v in report["vlogs"].values())
    print(f"extracted {len(report['vlogs'])} vlog(s), {seconds} s ({faceless} s without a face, {FILL_RULE}) "
          f"-> {args.output}")


def cmd_explain(args: argparse.Namespace) -> None:
    """Integrated Gradients of a trained run (or of every run of the grid) on its test vlogs."""
    from asym.train.job import pick_device

    p = _params(args)
    import torch

    torch.set_num_threads(p.train.threads)
    from asym.explain.run import explain_all, explain_path

    device = torch.device(args.device or pick_device(p.train.device))
    if args.run and (args.dataset or args.model or args.seeds):
        raise ConfigError("--run names one folder; --dataset, --model and --seeds choose runs of the grid")
    files = (explain_path(p, Path(args.run), device) if args.run
             else explain_all(p, device, args.dataset, args.model, args.seeds))
    print(f"explain: {len(files)} files -> {p.path_of('reports') / 'explain'} (attributions explain a research model, "
          "not depression)")


def cmd_ui(args: argparse.Namespace) -> None:
    """`mlflow ui` over this config's store, after printing the address of the training runs."""
    from asym.tracking.track import tracking_uri, ui_address

    p = _params(args)
    if tracking_uri(p).startswith(("http://", "https://")):
        print(f"MLflow UI: {tracking_uri(p)} (the tracking server serves its own UI)")
        return
    print(f"MLflow UI: {ui_address(p, args.host, args.port)}", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri(p),
                              "--host", args.host, "--port", str(args.port)])


def cmd_models(args: argparse.Namespace) -> None:
    from asym.models import factory

    if args.details:
        print_details(factory.details(_params(args)), registry.names(args.kind))
        return
    if Path(args.params).is_file():        # its plug-ins' models are listed too
        _params(args)
    names = registry.names(args.kind)
    entries = [registry.get(n) for n in names]
    widths = _widths(names, [e.kind for e in entries], [e.recipe for e in entries])
    print(_row(widths, MODEL_COLUMNS) + " description")
    for e in entries:
        print(_row(widths, (e.name, e.kind, e.recipe)) + f" {e.description}")


# The columns `asym models` leads with: whitespace-separated, one entry a line under a header line,
# so `awk 'NR > 1 {print $1}'` lists the names; the description, which holds spaces, comes last.
MODEL_COLUMNS = ("model", "kind", "recipe")
DAG_STEPS = ("fetch", "convert", "split", "train", "evaluate", "report", "robustness", "cost", "cost-plot", "explain",
             "track")   # the stage table's steps


def _widths(*columns: list[str]) -> list[int]:
    """Each column as wide as its longest cell or header, so no two cells run together."""
    return [max(len(h), *map(len, cells)) for h, cells in zip(MODEL_COLUMNS, columns, strict=True)]


def _row(widths: list[int], cells: tuple[str, ...]) -> str:
    return " ".join(f"{c:{w}s}" for c, w in zip(cells, widths, strict=True))


def print_details(rows: list[dict], chosen: list[str]) -> None:
    """Parameter counts per scale and dataset, with each count relative to ASYM's."""
    counts = [k for k in rows[0] if "/" in k]
    full = next(r for r in rows if r["model"] == "asym")
    shown = [r for r in rows if r["model"] in chosen]
    cells = [[f"{r[k]:,d} ({r[k] / full[k]:.2f})" for k in counts] for r in shown]
    count_widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(counts)]
    widths = _widths(*([r[c] for r in shown] for c in MODEL_COLUMNS))

    def right(values: list[str]) -> str:
        return "".join(f"  {v:>{w}s}" for v, w in zip(values, count_widths, strict=True))

    print(_row(widths, MODEL_COLUMNS) + right(counts))
    for r, c in zip(shown, cells, strict=True):
        print(_row(widths, tuple(r[k] for k in MODEL_COLUMNS)) + right(c))


def cmd_dvc_yaml(args: argparse.Namespace) -> None:
    from asym.dag.dvc_yaml import render
    from asym.io import write_text

    p = _params(args)
    text = render(p)
    if args.check:
        current = Path(args.output).read_text(encoding="utf-8") if Path(args.output).is_file() else ""
        if current != text:
            raise ConfigError(f"{args.output} is out of date with the stage table and params.yaml: run `asym dvc-yaml`")
        print(f"{args.output} is up to date")
        return
    write_text(args.output, text)
    print(f"wrote {args.output}")


DESCRIPTION = """\
asym trains and compares models that recognise depression from vlogs, on the
per-second audio and visual features of D-Vlog and LMVD: ASYM (Attentive Synergy
Mamba), its ablations and published baselines, each over several seeds under a
named split protocol. Only ASYM's abstract is public: asym rebuilds the model
from it, and every detail the abstract leaves out is an assumption. It writes
tables with confidence intervals and paired tests, plots, a model card per model
and an HTML report, and logs every run to MLflow. Without the datasets it runs
on synthetic demos written in each release's own layout: demo numbers show that
the pipeline works, not how any model performs.

`make run` runs the steps in this order (Snakemake; `dvc repro` runs the same
DAG), one command each, every path taken from --params:
  fetch -> convert -> split -> train -> evaluate -> report -> track
Beside them: `ui` shows the MLflow runs, `models` lists the models, `extract`
and `predict` apply a trained model to new vlogs, `robustness` tests the
trained runs on missing modalities, noise and shortened vlogs.
`asym <command> --help` gives a command's options; README.md gives the short
path (demo, real data, GPU, cluster) and the reference."""

EPILOG = """\
examples:
  asym models --kind baseline
  asym train --dataset dvlog --model asym --seeds 0 1 2
  asym predict --model runs/dvlog/asym --input my-vlogs --output predictions.csv"""

PROJECT = "asym"                 # the distribution pyproject.toml declares (its project.name)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """An option shows its default where it has one to read: not a required option's None nor a
    flag's False, nor where its help already says what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


class _TopHelpFormatter(argparse.RawDescriptionHelpFormatter, _HelpFormatter):
    """`asym --help`: the description's pipeline line and the examples keep their lines."""


class _VersionAction(argparse.Action):
    """`--version`: the version is looked up only when asked, so no other command depends on it."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        try:
            version = package_version()
        except ConfigError as exc:
            parser.error(str(exc))
        print(f"{parser.prog} {version}")
        parser.exit()


def package_version() -> str:
    """The installed distribution's version; from a checkout that was never installed (the rules'
    conda environment runs asym so), the version its pyproject.toml declares."""
    import importlib.metadata

    try:
        return importlib.metadata.version(PROJECT)
    except importlib.metadata.PackageNotFoundError:
        pass
    import tomllib

    from asym.layout import PACKAGE

    pyproject = PACKAGE.parent / "pyproject.toml"
    if not pyproject.is_file():
        raise ConfigError(f"{PROJECT} is not installed (no package metadata) and {pyproject} is missing")
    return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])


def _command(sub: argparse._SubParsersAction, name: str, summary: str, more: str = "") -> argparse.ArgumentParser:
    """A sub-command whose own --help opens with the summary the command list shows."""
    return sub.add_parser(name, help=summary, description=f"{summary}. {more}".strip(),
                          formatter_class=_HelpFormatter)


def _dataset(s: argparse.ArgumentParser) -> None:
    s.add_argument("--dataset", required=True, help="a dataset named under `datasets` in --params (dvlog, lmvd)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="asym", description=DESCRIPTION, epilog=EPILOG, formatter_class=_TopHelpFormatter)
    ap.add_argument("--version", action=_VersionAction, help="print asym's version and exit")
    ap.add_argument("--params", default=os.environ.get(PARAMS_VARIABLE) or DEFAULT_PARAMS,
                    help=f"the params file: datasets, models, seeds, scale and paths "
                         f"(default: ${PARAMS_VARIABLE} if set, else {DEFAULT_PARAMS})")
    sub = ap.add_subparsers(dest="command", required=True, title="commands", metavar="<command>")

    s = _command(sub, "synth", "write a demo dataset in a release's on-disk layout",
                 "Synthetic vlogs with a planted, learnable signal; sizes and mechanism from `synth` in --params.")
    s.add_argument("--format", choices=formats.names(), required=True, help="whose on-disk layout to write")
    s.add_argument("--layout", help="LMVD only: `authors` (Audio_feature, Video_feature, label) or `derived` "
                        "(per-vlog arrays with a labels.csv) (default: authors)")
    s.add_argument("--output", required=True, help="the folder to write")
    s.add_argument("--seed", type=int, help="random seed (default: synth.seed of --params)")
    s.add_argument("--n-samples", type=int, help="number of vlogs (default: synth.<format>.n_samples of --params)")
    s.set_defaults(func=cmd_synth)

    s = _command(sub, "fetch", "bring a dataset release into the raw data folder",
                 "From the dataset's `source` in --params: a URL (checked against its sha256 where given), a local archive "
                 "or folder, or `demo` (a synthetic release).")
    _dataset(s)
    s.set_defaults(func=cmd_fetch)

    s = _command(sub, "convert", "validate a release and write Parquet + dataset card",
                 "Either --dataset, or --format, --input and --output.")
    s.add_argument("--dataset", help="a dataset named under `datasets` in --params: its format, folders and subjects CSV")
    s.add_argument("--format", choices=formats.names(), help="default: the dataset's format")
    s.add_argument("--input", help="release folder (default: the dataset's raw folder)")
    s.add_argument("--output", help="Parquet file (default: the dataset's processed table)")
    s.add_argument("--subjects", help="sample,subject CSV (overrides the dataset's `subjects` in --params)")
    s.set_defaults(func=cmd_convert)

    s = _command(sub, "split", "the dataset's split protocol, with a leakage check",
                 "Writes the split CSV and a summary that says whether it is subject-independent.")
    _dataset(s)
    s.add_argument("--protocol", choices=(*OPTIMISM_PROTOCOLS, *GENDER_PROTOCOLS),
                   help="the optimism or cross-gender study's split under this protocol (default: the dataset's own protocol)")
    s.set_defaults(func=cmd_split)

    s = _command(sub, "train", "train one model on one dataset, every seed (or those given)",
                 "A seed already complete is kept; an interrupted one resumes.")
    _dataset(s)
    s.add_argument("--model", required=True, help="a registry name (`asym models` lists them)")
    s.add_argument("--seeds", type=int, nargs="+",
                   help="default: run.seeds of the active scale (a per-seed job, train.job: per_seed, names its one seed)")
    s.add_argument("--protocol", choices=(*OPTIMISM_PROTOCOLS, *GENDER_PROTOCOLS),
                   help="the optimism or cross-gender study's runs under this protocol (default: the main grid's runs)")
    # Written by the workflow (asym.dag.stages) so that an edited registry entry reruns its jobs;
    # refused when it no longer matches the entry. Not for users: hidden from --help.
    s.add_argument("--entry-digest", help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_train)

    s = _command(sub, "evaluate", "metrics of every run (or of --run) from its saved predictions")
    s.add_argument("--run", help="one run folder, runs/<dataset>/<model>/seed<k> (default: every run of --params)")
    s.set_defaults(func=cmd_evaluate)

    s = _command(sub, "report", "tables and plots in the reports folder",
                 "Markdown, CSV and LaTeX tables, plots and model cards from every evaluated run.")
    s.set_defaults(func=cmd_report)

    s = _command(sub, "track", "log every finished run and the report to MLflow, once each")
    s.set_defaults(func=cmd_track)

    s = _command(sub, "robustness", "every trained run on its test fold(s) under missing modalities, noise and "
                 "shortened vlogs", "Evaluation-time perturbations, no retraining; settings from `robustness` in --params.")
    s.add_argument("--device", help="default: train.device of --params")
    s.set_defaults(func=cmd_robustness)

    s = _command(sub, "ui", "serve the MLflow UI over the store; print where the training runs are")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (0.0.0.0 makes it reachable from other machines)")
    s.add_argument("--port", type=int, default=5000, help="port to serve on")
    s.set_defaults(func=cmd_ui)

    s = _command(sub, "models", "list the model registry",
                 "One model a line under a header: name, kind, training recipe, description.")
    s.add_argument("--kind", choices=registry.KINDS, help="only models of this kind (default: all)")
    s.add_argument("--details", action="store_true", help="parameter counts at both scales on both datasets")
    s.set_defaults(func=cmd_models)

    s = _command(sub, "cost", "parameters, MACs, CPU latency and peak memory of every model per minute of vlog",
                 "At the active scale on each dataset's widths, for the vlog lengths of `cost` in --params: "
                 "reports/cost.{md,csv,tex,html}.")
    s.add_argument("--models", nargs="+", help="only these registry names (default: every registered model)")
    s.add_argument("--threads", type=int, help="torch threads while timing (default: cost.threads of --params)")
    s.set_defaults(func=cmd_cost)

    s = _command(sub, "cost-plot", "test F1 against MACs per minute, per dataset",
                 "From reports/cost.csv (`asym cost`) and reports/summary.csv (`asym report`): reports/cost.png.")
    s.set_defaults(func=cmd_cost_plot)

    s = _command(sub, "extract", "D-Vlog's features (eGeMAPS LLDs, 68 landmarks per second) from videos",
                 "Reads only the `extract` block of --params.")
    s.add_argument("--video", nargs="+", required=True, help="video files; each file's name is its index")
    s.add_argument("--audio", nargs="+", help="audio files, one per video in the same order (default: the video's own track)")
    s.add_argument("--labels", help="optional index,label[,gender,fold] CSV (label: depression/normal or 1/0)")
    s.add_argument("--output", required=True, help="the release folder to write: new, empty, or an earlier "
                   "`asym extract` output (replaced); any other folder is refused")
    s.set_defaults(func=cmd_extract)

    s = _command(sub, "predict", "probabilities for new vlogs from a trained run (or the mean over its seeds)",
                 "A research model, not a diagnostic tool.")
    s.add_argument("--model", required=True, help="runs/<dataset>/<model>/seed<k>, or runs/<dataset>/<model> (every seed)")
    s.add_argument("--input", required=True, help="a release folder (either dataset's layout), an `asym extract` "
                   "output or an asym Parquet table")
    s.add_argument("--output", required=True, help="CSV: id, probability, label, threshold")
    s.add_argument("--device", help="default: train.device of --params, or cpu without one")
    s.set_defaults(func=cmd_predict)

    s = _command(sub, "explain", "Integrated Gradients attributions of a trained run on its test vlogs",
                 "Per vlog over time and per model over feature groups, beside a re-initialised model's (a sanity "
                 "check); settings from `explain` in --params. Attributions explain a research model, not depression.")
    s.add_argument("--run", help="runs/<dataset>/<model>/seed<k>, or runs/<dataset>/<model> (every seed) "
                   "(default: every complete run of --params, or of --dataset / --model / --seeds)")
    s.add_argument("--dataset", help="only this dataset's runs of the grid")
    s.add_argument("--model", help="only this model's runs of the grid (a registry name)")
    s.add_argument("--seeds", type=int, nargs="+", help="only these seeds (default: run.seeds of the active scale)")
    s.add_argument("--device", help="default: train.device of --params")
    s.set_defaults(func=cmd_explain)

    # Written by the workflow (asym.dag.stages) on every step it runs so that an edit that can
    # change a job's outputs reruns it (asym.dag.code); refused when it is not the digest of the
    # code the step runs. Not for users: hidden from --help.
    for step in DAG_STEPS:
        sub.choices[step].add_argument("--code-digest", help=argparse.SUPPRESS)

    s = _command(sub, "dvc-yaml", "write dvc.yaml from the stage table (asym.dag.stages) and --params")
    s.add_argument("--output", default="dvc.yaml", help="the file to write, or with --check to compare")
    s.add_argument("--check", action="store_true", help="fail if the file is out of date")
    s.set_defaults(func=cmd_dvc_yaml)
    return ap


def _check_code_digest(args: argparse.Namespace) -> None:
    """A step the workflow runs names the digest of its code: refused when the code differs (a
    dvc.yaml written before the code was edited), so no result is recorded under another code's command."""
    given = getattr(args, "code_digest", None)
    if not given:
        return
    from asym.dag import stages

    w = {k: getattr(args, k, None) for k in ("protocol", "dataset", "model")}
    stage = stages.of_command(args.command, w)
    if stage is None:
        raise ConfigError(f"--code-digest: no stage of the workflow runs `asym {args.command}` with these options")
    actual = stage.code_digest(_params(args), w)
    if given != actual:
        raise ConfigError(f"the code this step runs changed since its command was written (--code-digest {given}, "
                          f"now {actual}): run `asym dvc-yaml` (or rerun Snakemake)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code = _main(args)
    from asym import jobstats

    jobstats.record(args.command, {k: getattr(args, k, None) for k in ("dataset", "model", "protocol", "seeds")}, code)
    return code


def _main(args: argparse.Namespace) -> int:
    try:
        _check_code_digest(args)
        args.func(args)
        sys.stdout.flush()                  # a closed pipe shows here, not at exit
    except (DataError, ConfigError) as exc:
        print(f"asym {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader stopped early (`asym models | head`): exit quietly, not with a traceback, and
        # point stdout at /dev/null so that flushing it at exit raises nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
