"""The object categories of the CAD library and their ShapeNetCore.v2 synsets (DESIGN.md)."""

CATEGORIES: tuple[str, ...] = (
    "bathtub", "bed", "bin", "bookshelf", "cabinet", "chair", "display", "sofa", "table",
)  # fmt: skip
"""The nine Scan2CAD categories, sorted."""

SHAPENET_SYNSETS: dict[str, str] = {
    "02747177": "bin",
    "02808440": "bathtub",
    "02818832": "bed",
    "02871439": "bookshelf",
    "02933112": "cabinet",
    "03001627": "chair",
    "03211117": "display",
    "04256520": "sofa",
    "04379243": "table",
}
"""ShapeNet synset id (the top-level folder of ShapeNetCore.v2) -> category."""
