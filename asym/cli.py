"""The `asym` command: one sub-command per DAG step. Snakemake rules and DVC stages call these."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asym.errors import ConfigError, DataError


def _params(args: argparse.Namespace):
    from asym.config import load_params

    return load_params(args.params)


def cmd_synth(args: argparse.Namespace) -> None:
    from asym.data.synthetic import write_demo

    p = _params(args)
    cfg = dict(p.raw["synth"][args.format])
    if args.n_samples:
        cfg["n_samples"] = args.n_samples
    seed = args.seed if args.seed is not None else int(p.raw["synth"]["seed"])
    write_demo(args.format, Path(args.output), cfg, seed, args.layout)
    print(f"wrote demo {args.format} ({args.layout if args.format == 'lmvd' else 'release'} layout) to {args.output}")


def cmd_fetch(args: argparse.Namespace) -> None:
    from asym.data.fetch import fetch_dataset
    from asym.io import write_json

    p = _params(args)
    out = Path(args.output)
    prov = fetch_dataset(args.dataset, p.dataset(args.dataset), p.raw["synth"], out, p.root / ".cache" / "downloads")
    write_json(out.parent / f"{out.name}.provenance.json", prov)
    print(f"{args.dataset}: {prov['source']} -> {out}")


def cmd_convert(args: argparse.Namespace) -> None:
    from asym.data.convert import convert
    from asym.io import read_json

    p = _params(args)
    src = Path(args.input)
    prov_file = src.parent / f"{src.name}.provenance.json"
    prov = read_json(prov_file) if prov_file.is_file() else {}
    subjects = args.subjects
    if subjects is None and args.dataset:
        subjects = p.dataset(args.dataset).get("subjects")
    fmt = args.format or (p.dataset(args.dataset)["format"] if args.dataset else None)
    if fmt is None:
        raise ConfigError("convert needs --format or --dataset")
    subjects_path = None if not subjects else (Path(subjects) if Path(subjects).is_absolute() else p.root / subjects)
    card = convert(fmt, src, Path(args.output), p.raw["readers"], subjects_path,
                   provenance=prov, dataset=args.dataset)
    print(f"{card['dataset']}: {card['n_samples']} vlogs ({card['n_depressed']} depressed) -> {args.output}")


def cmd_split(args: argparse.Namespace) -> None:
    from asym.data.parquet import read_samples
    from asym.data.splits import make_split, split_summary
    from asym.io import atomic_path, write_json

    p = _params(args)
    table = read_samples(Path(args.input))
    split = make_split(table, p.dataset(args.dataset), p.raw["split"], Path(args.input))
    out = Path(args.output)
    with atomic_path(out) as tmp:
        split.to_csv(tmp, index=False)
    summary = split_summary(split, bool(table.meta.get("subjects_supplied")))
    write_json(out.with_suffix(".json"), {**summary, "method": p.dataset(args.dataset)["split"]})
    print(f"{args.dataset}: {summary['per_fold']} (subject-independent verified: {summary['subject_independent_verified']})")


def cmd_train(args: argparse.Namespace) -> None:
    p = _params(args)
    from asym.train import env_threads

    env_threads(int(p.train["threads"]))
    from asym.train import train_run

    s = train_run(p, args.dataset, args.model, args.seed, Path(args.data), Path(args.split), Path(args.output))
    print(f"{args.dataset}/{args.model}/seed{args.seed}: best epoch {s['best_epoch']}, "
          f"valid selection {s['best_valid_selection']:.3f}, {s['epoch_time_s']:.2f} s/epoch")


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Metrics from saved predictions. The MLflow update of the run is done by `report`, in one
    process for all runs, so the many evaluate jobs stay cheap and never contend for the store."""
    from asym.evaluate import evaluate_run

    payload = evaluate_run(Path(args.run), Path(args.output) if args.output else None)
    t = payload["test"]
    print(f"{payload['dataset']}/{payload['model']}/seed{payload['seed']}: test acc {t['accuracy']:.3f} F1 {t['f1']:.3f}")


def cmd_report(args: argparse.Namespace) -> None:
    from asym.report import make_report

    p = _params(args)
    summary = make_report(p)
    print(f"report: {len(summary)} figures -> {p.path_of('reports')}")


def cmd_models(args: argparse.Namespace) -> None:
    from asym.models import registry

    if args.details:
        print_details(registry.details(_params(args)), registry.names(args.kind))
        return
    for name in registry.names(args.kind):
        e = registry.get(name)
        print(f"{name:26s} {e.kind:9s} {e.recipe:9s} {e.description}")


def print_details(rows: list[dict], chosen: list[str]) -> None:
    """Parameter counts per scale and dataset, with each count relative to ASYM's."""
    counts = [k for k in rows[0] if "/" in k]
    full = next(r for r in rows if r["model"] == "asym")
    print(f"{'model':26s} {'kind':9s} {'recipe':9s}" + "".join(f"{k:>22s}" for k in counts))
    for r in (r for r in rows if r["model"] in chosen):
        cells = "".join(f"{r[k]:>14,d} ({r[k] / full[k]:4.2f})" for k in counts)
        print(f"{r['model']:26s} {r['kind']:9s} {r['recipe']:9s}{cells}")


def cmd_dvc_yaml(args: argparse.Namespace) -> None:
    from asym.dvc_yaml import render
    from asym.io import write_text

    p = _params(args)
    text = render(p)
    if args.check:
        current = Path(args.output).read_text(encoding="utf-8") if Path(args.output).is_file() else ""
        if current != text:
            raise ConfigError(f"{args.output} is out of date with the registry and params.yaml: run `asym dvc-yaml`")
        print(f"{args.output} is up to date")
        return
    write_text(args.output, text)
    print(f"wrote {args.output}")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="asym", description=__doc__)
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write a demo dataset in a release layout")
    s.add_argument("--format", choices=["dvlog", "lmvd"], required=True)
    s.add_argument("--layout", choices=["authors", "derived"], default="authors", help="LMVD layout")
    s.add_argument("--output", required=True)
    s.add_argument("--seed", type=int)
    s.add_argument("--n-samples", type=int)
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("fetch", help="bring a dataset release into data/raw")
    s.add_argument("--dataset", required=True)
    s.add_argument("--output", required=True)
    s.set_defaults(func=cmd_fetch)

    s = sub.add_parser("convert", help="validate a release and write Parquet + dataset card")
    s.add_argument("--format", choices=["dvlog", "lmvd"], help="default: the dataset's format in params.yaml")
    s.add_argument("--input", required=True)
    s.add_argument("--output", required=True)
    s.add_argument("--dataset", help="dataset name in params.yaml (for its subjects CSV)")
    s.add_argument("--subjects", help="sample,subject CSV (overrides params.yaml)")
    s.set_defaults(func=cmd_convert)

    s = sub.add_parser("split", help="subject-independent folds with a leakage check")
    s.add_argument("--dataset", required=True)
    s.add_argument("--input", required=True)
    s.add_argument("--output", required=True)
    s.set_defaults(func=cmd_split)

    s = sub.add_parser("train", help="train one (dataset, model, seed)")
    s.add_argument("--dataset", required=True)
    s.add_argument("--model", required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--output", required=True)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="metrics of one run from its saved predictions")
    s.add_argument("--run", required=True)
    s.add_argument("--output")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("report", help="tables and plots in reports/, and an MLflow report run")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("models", help="list the model registry")
    s.add_argument("--kind", choices=["asym", "ablation", "baseline"])
    s.add_argument("--details", action="store_true", help="parameter counts at both scales on both datasets")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("dvc-yaml", help="write dvc.yaml from the registry and params.yaml")
    s.add_argument("--output", default="dvc.yaml")
    s.add_argument("--check", action="store_true", help="fail if the file is out of date")
    s.set_defaults(func=cmd_dvc_yaml)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (DataError, ConfigError) as exc:
        print(f"asym {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
