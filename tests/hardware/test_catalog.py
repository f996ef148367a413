"""The device catalog: every figure sourced, estimates labelled, roofline arithmetic, cloud vs edge."""

from __future__ import annotations

import math

import pytest

from optim.errors import ConfigError
from optim.hardware import catalog
from optim.hardware.catalog import CATALOG, ESTIMATE_LABEL, cloud_vs_edge, estimate

EXPECTED = {"rpi4", "rpi5", "jetson-orin-nano", "coral-edge-tpu", "phone-npu", "xeon-8480", "a100", "h100", "tpu-v4"}


def test_catalog_has_the_devices_with_a_source_for_every_figure():
    assert set(CATALOG) == EXPECTED
    for dev in CATALOG.values():
        figures = list(dev.peak_ops.values()) + [dev.memory_bw, dev.power_w]
        assert dev.peak_ops and set(dev.peak_ops) <= set(catalog.DTYPES)
        for fig in figures:
            assert fig.value > 0 and len(fig.source) > 10, (dev.key, fig)
    # documented figures we quote (datasheets / vendor docs), not derived ones
    assert CATALOG["a100"].peak_ops["fp32"].value == 19.5e12
    assert CATALOG["a100"].memory_bw.value == 2039e9
    assert CATALOG["tpu-v4"].peak_ops["bf16"].value == 275e12
    assert CATALOG["coral-edge-tpu"].peak_ops["int8"].value == 4e12 and CATALOG["coral-edge-tpu"].power_w.value == 2
    assert "derived" in CATALOG["rpi4"].peak_ops["fp32"].source  # our own arithmetic says so


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_gate_a_model_with_half_the_macs_is_estimated_faster_on_every_device(key):
    # two sizes of one architecture: halving the MACs halves the weights too
    big = estimate(40e6, 1.6e6 + 4 * 3 * 224 * 224, key)
    small = estimate(20e6, 0.8e6 + 4 * 3 * 224 * 224, key)
    assert small.latency_s < big.latency_s and small.energy_j < big.energy_j
    # with the same bytes, fewer MACs is never slower
    assert estimate(20e6, 1.6e6, key).latency_s <= estimate(40e6, 1.6e6, key).latency_s


def test_estimates_are_labelled_and_unpack_as_latency_and_energy():
    est = estimate(1e9, 0, "a100")
    latency, energy = est
    assert math.isclose(latency, 2e9 / 19.5e12) and est.bound == "compute"
    assert math.isclose(energy, latency * 400)
    assert "estimate" in est.label and est.label == ESTIMATE_LABEL and len(est.sources) == 3
    mem = estimate(1, 2039e9, "a100")
    assert math.isclose(mem.latency_s, 1.0) and mem.bound == "memory"


def test_dtype_fallbacks_and_on_chip_cache():
    assert estimate(1e6, 0, "coral-edge-tpu", "fp32").dtype == "int8"  # int8-only accelerator
    assert estimate(1e6, 0, "rpi4", "int8").dtype == "fp32"  # no int8 dot product on Cortex-A72
    assert estimate(1e6, 0, "tpu-v4", "fp32").dtype == "bf16"
    assert estimate(1e6, 0, "a100", "int8").latency_s < estimate(1e6, 0, "a100", "fp32").latency_s
    assert estimate(1e6, 7 * 2**20, "coral-edge-tpu").memory_s == 0.0  # parameters cached on chip
    assert estimate(1e6, 9 * 2**20, "coral-edge-tpu").memory_s > 0.0


def test_cloud_vs_edge_adds_round_trip_and_upload():
    tiny = cloud_vs_edge(50_000, 200_000, 256, "rpi5", rtt_s=0.05, uplink_mbps=10)
    assert math.isclose(tiny.network_s, 0.05 + 256 * 8 / 10e6)
    assert math.isclose(tiny.cloud_latency_s, tiny.cloud.latency_s + tiny.network_s)
    assert tiny.faster == "edge"
    huge = cloud_vs_edge(200e9, 500e6, 600_000, "rpi4")  # a large model: the Pi takes seconds
    assert huge.faster == "cloud" and huge.edge_latency_s > 1.0


def test_bad_inputs_name_the_setting():
    with pytest.raises(ConfigError, match="device='tpu-v9'.*known: rpi4"):
        estimate(1, 1, "tpu-v9")
    with pytest.raises(ConfigError, match="dtype='int4'"):
        estimate(1, 1, "a100", "int4")
    with pytest.raises(ConfigError, match="macs=-1"):
        estimate(-1, 1, "a100")
    with pytest.raises(ConfigError, match="uplink_mbps=0"):
        cloud_vs_edge(1, 1, 1, "rpi5", uplink_mbps=0)


def test_catalog_table_rows_carry_sources():
    rows = catalog.catalog_table()
    assert {r["device"] for r in rows} == EXPECTED
    for r in rows:
        assert r["memory_bw_gbs"] > 0 and r["power_w"] > 0 and "bandwidth:" in r["sources"]
