"""Settings read from the environment: groups, aliases, parsing, the worker count in containers."""
import pytest

from runner.settings import cpu_count
from settings import Settings, unknown_names


def test_groups_aliases_and_overrides():
    s = Settings.from_env({"EXT_WORKERS": "3", "RUNNER_BUNDLE_STORE_BASE": "/srv/b", "BUNDLE_STORE_BASE": "/win"},
                          cache_root="/c")
    assert s.runner.workers == 3
    assert s.bundles.bundle_store_base == "/win" and s.bundles.cache_root == "/c"  # unprefixed name wins
    with pytest.raises(TypeError, match="unknown settings: nope"):
        Settings.from_env({}, nope=1)


def test_bad_values_keep_the_default():
    s = Settings.from_env({"EXT_QUEUE_SIZE": "lots", "EXT_EGRESS_ALLOW_PRIVATE": "perhaps"})
    assert s.runner.queue_size == 64 and s.runner.egress_allow_private is False


def test_alga_variables_are_not_reported_as_typos():
    environ = {"RUNNER_DOCKER_PORT": "8085", "RUNNER_PUBLIC_BASE": "/runner", "EXT_WORKRES": "2"}
    assert unknown_names(environ) == ["EXT_WORKRES"]


@pytest.mark.parametrize("files,expected", [
    ({"cpu.max": "200000 100000"}, 2),                    # cgroup v2, 2 CPUs
    ({"cpu.max": "150000 100000"}, 2),                    # 1.5 CPUs: round up
    ({"cpu.max": "max 100000"}, None),                    # unlimited: affinity
    ({"cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "100000"}, 1),  # cgroup v1
    ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),
    ({}, None),
])
def test_worker_count_follows_a_container_cpu_limit(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text + "\n")
    unlimited = cpu_count(str(tmp_path / "none"))
    assert cpu_count(str(tmp_path)) == (min(expected, unlimited) if expected else unlimited)
