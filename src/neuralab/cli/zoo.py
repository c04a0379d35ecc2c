"""`neuralab zoo`: the architectures, their papers and their sizes."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("zoo", help="list the model zoo: paper, year, parameters at paper size and at 28x28x1",
                       description="The architectures neuralab builds, with the paper each comes from and its "
                                   "parameter count at the paper's input size and at small inputs "
                                   "(10 classes). `neuralab summary MODEL` shows one layer by layer.")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run_zoo)


def zoo_rows() -> list[dict]:
    """One row per architecture, with the counts written down in the zoo: nothing is built."""
    from neuralab.models.zoo import ARCHITECTURES, ZOO_COUNTS, ZOO_SIZES

    rows = []
    for name, a in ARCHITECTURES.items():
        c, h, w = a.paper_input
        paper, *small = ZOO_COUNTS[name]
        rows.append({
            "model": name, "year": a.year, "paper": a.paper, "introduced": a.introduced, "variant": a.variant,
            "paper_input": f"{h}x{w}x{c}", "paper_classes": a.paper_classes, "params_paper": paper,
            **{f"params_{s[1]}x{s[2]}x{s[0]}": n for s, n in zip(ZOO_SIZES, small)},
        })
    return rows


def run_zoo(args) -> int:
    import json

    from neuralab.models.table import render_table

    rows = zoo_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("Model", "Year", "Params at paper size", "28x28x1", "32x32x3", "Paper")
    table = [(r["model"], str(r["year"]), f"{r['params_paper']:,} ({r['paper_input']}, {r['paper_classes']} classes)",
              f"{r['params_28x28x1']:,}", f"{r['params_32x32x3']:,}", r["paper"])
             for r in rows]
    variants = [f"{r['model']}: {r['variant']}, {r['params_paper']:,} parameters at {r['paper_input']}"
                for r in rows if r["variant"]]
    print(render_table("neuralab model zoo (small inputs: 10 classes)", header, table, right=(2, 3, 4),
                       footer=[*variants, "Details: neuralab summary MODEL --input 28x28x1; adaptations: docs/models.md"]),
          end="")
    return 0
