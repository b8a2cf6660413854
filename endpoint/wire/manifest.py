"""The signed sidecar that travels with every student model: what it is, its hash, its lineage."""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from endpoint.wire.protocol import ENDPOINT_ID_PATTERN

VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
VERSION_RE = re.compile(r"^v(\d{4,18})$")  # the registry's names, v0001, v0002, ...: the number is the serial
SHA256_PATTERN = r"^[0-9a-f]{64}$"
# NaN has no JSON form, so a metric that is NaN could never be signed.
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]



def version_number(version: str) -> int:
    """The serial a registry version name carries (``v0004`` -> 4); -1 for a name of another form."""
    match = VERSION_RE.match(version)
    return int(match.group(1)) if match else -1

class Manifest(BaseModel):
    """Everything the endpoint trusts about a model file; the edge signs its canonical bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=128, description="student name, e.g. 'yolo11n-student'")
    version: str = Field(pattern=VERSION_PATTERN, description="registry version, e.g. 'v0004'")
    # Signed, so a captured push can be neither re-addressed nor replayed over a newer install.
    target: str = Field(pattern=ENDPOINT_ID_PATTERN, description="fleet group name or one endpoint id it is for")
    serial: int = Field(ge=1, description="strictly increasing per student name; endpoints refuse any not newer")
    parent_version: str = Field("", description="version this one was trained from; '' for the first")
    format: Literal["onnx-int8", "onnx-fp32"] = Field(description="file format of the model bytes")
    sha256: str = Field(pattern=SHA256_PATTERN, description="sha256 of the model file, hex")
    size_bytes: int = Field(gt=0, description="length of the model file")
    input_size: tuple[int, int] = Field(description="network input (height, width) in pixels")
    class_names: list[str] = Field(default_factory=list, description="label of each class id")
    metrics: dict[str, FiniteFloat] = Field(default_factory=dict, description="evaluation at publish time, e.g. map50")
    created: FiniteFloat = Field(ge=0.0, description="unix seconds when the version was published")


def canonical_bytes(manifest: Manifest) -> bytes:
    """The exact bytes that are signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(manifest.model_dump(mode="json"), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")


def parse_manifest(data: bytes | str) -> Manifest:
    """Parse manifest JSON (raises pydantic.ValidationError when malformed)."""
    return Manifest.model_validate_json(data)
