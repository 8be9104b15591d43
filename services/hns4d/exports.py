"""Exports of notified sites and movements, free of I/O: GeoJSON (RFC 7946), HXL-tagged CSV and KML.

Coordinates are restricted by default; the caller decides who may export which records and writes the
audit entry. A site is a point, a movement a line along its route; longitude comes first in GeoJSON and
KML, as both formats say.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol
from xml.sax.saxutils import escape, quoteattr

from services.hns4d.rules import Kind, Point
from shared.exports import csv_text

KML_NAMESPACE = "http://www.opengis.net/kml/2.2"
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
HXL_COLUMNS = (  # (header, HXL hashtag); one row per point, so a route reads as its points in order
    ("Reference", "#meta+ref"), ("Kind", "#meta+kind"), ("Country", "#country+code"), ("Organisation", "#org"),
    ("Name", "#loc+name"), ("Point", "#meta+point"), ("Latitude", "#geo+lat"), ("Longitude", "#geo+lon"),
    ("From", "#date+start"), ("To", "#date+end"),
)
COORDINATE_COLUMNS = (6, 7)  # latitude and longitude: signed numbers, not formulas


class RecordLike(Protocol):
    reference: str
    kind: Kind
    country: str
    organisation: str
    name: str  # a site's name, a movement's description
    points: Sequence[Point]
    starts_at: datetime | None  # a movement's start, a site's "valid from"
    ends_at: datetime | None


def _when(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _shape(record: RecordLike) -> None:
    """A site is one point, a movement a route of two or more: anything else is refused, not exported
    as an invalid geometry."""
    wanted = len(record.points) == 1 if record.kind == "site" else len(record.points) >= 2
    if not wanted:
        raise ValueError(f"{record.reference}: a site has one point and a movement two or more "
                         f"({record.kind} with {len(record.points)})")


def _geometry(record: RecordLike) -> dict[str, Any]:
    _shape(record)
    coordinates = [[p.lon, p.lat] for p in record.points]
    if record.kind == "site":
        return {"type": "Point", "coordinates": coordinates[0]}
    return {"type": "LineString", "coordinates": coordinates}


def geojson(records: Iterable[RecordLike]) -> dict[str, Any]:
    """A FeatureCollection: each record a Feature, its fields as properties."""
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": r.reference, "geometry": _geometry(r),
         "properties": {"reference": r.reference, "kind": r.kind, "country": r.country, "organisation": r.organisation,
                        "name": r.name, "from": _when(r.starts_at), "to": _when(r.ends_at)}}
        for r in records]}


def hxl_csv(records: Iterable[RecordLike]) -> str:
    """CSV with a header row and an HXL hashtag row; one row per point. Every cell is neutralised
    against spreadsheet formulas (shared/exports.py; HXL readers see the quote as part of the value),
    the coordinates kept as the numbers they are."""
    rows: list[list[object]] = [[header for header, _ in HXL_COLUMNS], [tag for _, tag in HXL_COLUMNS]]
    for r in records:
        _shape(r)
        rows += [[r.reference, r.kind, r.country, r.organisation, r.name, n, f"{point.lat:.6f}", f"{point.lon:.6f}",
                  _when(r.starts_at) or "", _when(r.ends_at) or ""] for n, point in enumerate(r.points, 1)]
    return csv_text(rows, number_columns=COORDINATE_COLUMNS)


def _xml(text: str) -> str:
    """Text XML 1.0 allows: the control characters a message may carry (a vertical tab) left out."""
    return CONTROL.sub("", text)


def kml(records: Iterable[RecordLike], *, title: str = "CMCoord humanitarian notifications") -> str:
    """A KML 2.2 document: a Placemark per record, a Point for a site, a LineString for a route."""
    marks = []
    for r in records:
        _shape(r)
        coordinates = " ".join(f"{p.lon:.6f},{p.lat:.6f}" for p in r.points)
        shape = (f"<Point><coordinates>{coordinates}</coordinates></Point>" if r.kind == "site"
                 else f"<LineString><tessellate>1</tessellate><coordinates>{coordinates}</coordinates></LineString>")
        when = " to ".join(t for t in (_when(r.starts_at), _when(r.ends_at)) if t)
        description = f"{r.kind}, {r.organisation}" + (f", {when}" if when else "")
        marks.append(f"<Placemark id={quoteattr(_xml(r.reference))}><name>{escape(_xml(r.reference))}: "
                     f"{escape(_xml(r.name))}</name><description>{escape(_xml(description))}</description>{shape}"
                     "</Placemark>")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="{KML_NAMESPACE}"><Document>'
            f"<name>{escape(title)}</name>{''.join(marks)}</Document></kml>\n")
