"""puffy.params: YAML is read on libyaml's safe loader when PyYAML has it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from puffy.params import DEFAULT_PARAMS_DIR, safe_load_yaml

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "puffy"
SHIPPED_YAML = sorted(DEFAULT_PARAMS_DIR.glob("*.yaml")) + sorted(PACKAGE.rglob("*.yaml"))


def test_every_shipped_yaml_reads_as_safe_load_reads_it():
    assert len(SHIPPED_YAML) > 8
    for path in SHIPPED_YAML:
        text = path.read_text(encoding="utf-8")
        assert safe_load_yaml(text) == yaml.safe_load(text), path


@pytest.mark.parametrize("text", ["a: !!python/object/apply:os.system [echo]\n", "a: !!python/name:os.system\n"])
def test_tags_that_construct_objects_are_refused(text):
    with pytest.raises(yaml.constructor.ConstructorError):
        safe_load_yaml(text)
