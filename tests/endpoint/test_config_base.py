"""One loader for every config: a bad field or file is named in the error; sections; strictness everywhere."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from pydantic import BaseModel, ValidationError

from endpoint.config import EndpointConfig
from endpoint.wire.config_base import MAX_CONFIG_BYTES, StrictConfig, load_config


def test_a_bad_field_names_the_model_the_file_and_the_field(tmp_path):
    path = tmp_path / "endpoint.yaml"
    path.write_text("endpoint_id: cam-1\nbroker: {host: edge.lan, prot: 1883}\n")
    with pytest.raises(ValidationError, match=r"(?s)EndpointConfig in .*endpoint\.yaml.*broker\.prot"):
        load_config(EndpointConfig, path)


def test_a_section_is_read_when_present_and_the_whole_file_otherwise(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("endpoint: {endpoint_id: cam-7}\nother: 1\n")
    assert load_config(EndpointConfig, path, section="endpoint").endpoint_id == "cam-7"
    path.write_text("endpoint_id: cam-8\n")
    assert load_config(EndpointConfig, path, section="endpoint").endpoint_id == "cam-8"
    path.write_text("")
    assert load_config(EndpointConfig, path) == EndpointConfig()


@pytest.mark.parametrize("text, message", [("- a\n- b\n", "a config is a mapping"),
                                           ("broker: {host: [\n", "not valid YAML")])
def test_a_file_that_is_not_a_mapping_is_refused_with_its_name(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"bad\.yaml.*{message}|{message}.*bad\.yaml"):
        load_config(EndpointConfig, path)


def test_a_file_too_large_to_be_a_config_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ValueError, match="is not a config"):
        load_config(EndpointConfig, path)


def _config_models() -> list[type[BaseModel]]:
    """Every pydantic model named ``*Config`` in endpoint/ and edge/ (a new one is checked without a list)."""
    import edge
    import endpoint

    found = {}
    for package in (endpoint, edge):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith("__main__"):
                continue
            try:
                module = importlib.import_module(info.name)
            except ImportError:  # an optional extra (torch, onnxruntime) is not installed
                continue
            for name, obj in vars(module).items():
                if (name.endswith("Config") and inspect.isclass(obj) and issubclass(obj, BaseModel)
                        and obj.__module__ == module.__name__):
                    found[f"{obj.__module__}.{name}"] = obj
    return list(found.values())


def test_every_config_model_is_strict_and_describes_every_field():
    models = _config_models()
    assert len(models) >= 8, [m.__name__ for m in models]
    for model in models:
        # endpoint.sources.SourceConfig is strict by its own model_config while endpoint/ is being regrouped
        assert issubclass(model, StrictConfig) or model.__name__ == "SourceConfig", \
            f"{model.__module__}.{model.__name__} is not a StrictConfig"
        assert model.model_config.get("extra") == "forbid", f"{model.__name__} accepts unknown fields"
        missing = [name for name, field in model.model_fields.items() if not field.description]
        assert not missing, f"{model.__name__}: fields without a description: {missing}"
