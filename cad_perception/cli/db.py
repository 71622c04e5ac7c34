"""`cad-perception db build|add|embed|default|info|query`: fill and inspect a CAD database."""

import argparse
import json
import sys

from cad_perception.cad.categories import CATEGORIES
from cad_perception.cad.database import CadDatabase
from cad_perception.cad.ingest import IngestReport, add_source, build_procedural
from cad_perception.cad.search import SearchResult
from cad_perception.cli._defaults import add_model_argument, model_dir
from cad_perception.cli._output import EXIT_BAD_INPUT, EXIT_OK, PROG, table, write
from cad_perception.model.checkpoint import load_model
from cad_perception.model.embed import embed_database
from cad_perception.pipeline.defaults import ensure_default_db

EXIT_INGEST_FAILURES = 1
"""`db build` / `db add` exit code when some models were skipped as unusable."""


def register(subcommands: argparse._SubParsersAction) -> None:
    """Add the `db` parser and its sub-subcommands."""
    parser = subcommands.add_parser(
        "db", help="build, fill and inspect a CAD database", description=__doc__
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    build = actions.add_parser("build", help="create a database of procedural CAD models")
    build.add_argument("--out", required=True, help="database folder to create or extend")
    build.add_argument(
        "--procedural", type=int, required=True, metavar="N", help="models per category"
    )
    build.add_argument("--seed", type=int, default=0, help="first seed (default: %(default)s)")
    _add_quiet(build)
    build.set_defaults(handler=_build)

    add = actions.add_parser("add", help="add mesh files (OBJ, PLY, STL, OFF, GLB, glTF)")
    add.add_argument("db", help="database folder (created when missing)")
    add.add_argument("source", help="a mesh file or a folder searched recursively")
    add.add_argument("--category", help=f"category, e.g. {', '.join(CATEGORIES)}")
    add.add_argument(
        "--shapenet",
        action="store_true",
        help="SOURCE has ShapeNet's <synset>/<id>/models/model_normalized.obj layout",
    )
    _add_quiet(add)
    add.set_defaults(handler=_add)

    info = actions.add_parser("info", help="counts per category, encoders, version, failures")
    info.add_argument("db", help="database folder")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(handler=_info)

    embed = actions.add_parser(
        "embed", help="store a model's CAD embeddings (needed for retrieval with that model)"
    )
    embed.add_argument("db", help="database folder")
    add_model_argument(embed)
    embed.add_argument(
        "--missing-only", action="store_true", help="only CADs without a vector of this model"
    )
    _add_quiet(embed)
    embed.set_defaults(handler=_embed)

    default = actions.add_parser(
        "default",
        help="build the default database (procedural library) if missing and print its folder",
    )
    add_model_argument(default)
    default.add_argument(
        "--no-embed", action="store_true", help="do not embed it with the model's CAD encoder"
    )
    _add_quiet(default)
    default.set_defaults(handler=_default)

    query = actions.add_parser("query", help="show one CAD, or the CADs most like it")
    query.add_argument("db", help="database folder")
    target = query.add_mutually_exclusive_group(required=True)
    target.add_argument("--cad-id", help="show this CAD's record")
    target.add_argument("--like", metavar="CAD_ID", help="list the CADs most similar to this one")
    query.add_argument("--k", type=int, default=5, help="neighbours to list (default: %(default)s)")
    query.set_defaults(handler=_query)


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _build(args: argparse.Namespace) -> int:
    if args.procedural < 0:
        write(f"{PROG} db build: error: --procedural must be >= 0", sys.stderr)
        return EXIT_BAD_INPUT
    with CadDatabase.create(args.out, exist_ok=True) as db:
        report = build_procedural(db, args.procedural, args.seed, progress=not args.quiet)
        return _report(report, db)


def _embed(args: argparse.Namespace) -> int:
    model = load_model(model_dir(args))
    with CadDatabase.open(args.db) as db:
        name, version, count = embed_database(
            db, model, only_missing=args.missing_only, progress=not args.quiet
        )
        write(f"embedded {count} CADs as {name}@{version}; {db.root} is at version {db.version}")
    return EXIT_OK


def _default(args: argparse.Namespace) -> int:
    embed = not args.no_embed
    path = ensure_default_db(
        model_dir(args) if embed else None, embed=embed, progress=not args.quiet
    )
    write(str(path))
    return EXIT_OK


def _add(args: argparse.Namespace) -> int:
    with CadDatabase.create(args.db, exist_ok=True) as db:
        report = add_source(
            db, args.source, args.category, shapenet=args.shapenet, progress=not args.quiet
        )
        return _report(report, db)


def _report(report: IngestReport, db: CadDatabase) -> int:
    write(
        f"added {report.added}, already present {report.skipped_existing}, "
        f"failed {len(report.failed)}; {db.root} now holds {len(db)} CADs (version {db.version})"
    )
    for source, reason in report.failed:
        write(f"  failed: {source}: {reason}")
    return EXIT_INGEST_FAILURES if report.failed else EXIT_OK


def _info(args: argparse.Namespace) -> int:
    with CadDatabase.open(args.db, readonly=True) as db:
        info = db.info()
    if args.json:
        write(json.dumps(info, indent=2))
        return EXIT_OK
    rows = [(name, str(count)) for name, count in info["per_category"].items()]
    rows.append(("total", str(info["total"])))
    lines = [f"CAD database {args.db}: version {info['version']}, {info['failed']} failed sources"]
    lines += table(("category", "CADs"), rows)
    for encoder in info["encoders"]:
        lines.append(
            f"encoder {encoder['name']} v{encoder['version']}: "
            f"{encoder['count']} vectors of dim {encoder['dim']}"
        )
    if not info["encoders"]:
        lines.append("no encoder embeddings yet (similarity by voxel IoU)")
    write("\n".join(lines))
    return EXIT_OK


def _query(args: argparse.Namespace) -> int:
    with CadDatabase.open(args.db, readonly=True) as db:
        if args.cad_id is not None:
            record = db.get(args.cad_id)
            extents = (
                None if record.extents is None else [round(float(e), 4) for e in record.extents]
            )
            write(
                json.dumps(
                    {
                        "cad_id": record.cad_id,
                        "category": record.category,
                        "symmetry": record.symmetry,
                        "source": record.source,
                        "mesh": str(record.mesh_path),
                        "extents_m": extents,
                        "occupancy": round(float(record.voxels.mean()), 4),
                        "content_hash": record.content_hash,
                    },
                    indent=2,
                )
            )
            return EXIT_OK
        result = db.like(args.like, args.k)
    write(_neighbours_table(args.like, result))
    return EXIT_OK


def _neighbours_table(cad_id: str, result: SearchResult) -> str:
    rows = [
        (str(rank), other, f"{distance:.4f}")
        for rank, (other, distance) in enumerate(
            zip(result.ids[0], result.distances[0], strict=True), start=1
        )
    ]
    return "\n".join(
        [
            f"CADs most like {cad_id} ({result.metric}):",
            *table(("rank", "cad_id", "distance"), rows),
        ]
    )
