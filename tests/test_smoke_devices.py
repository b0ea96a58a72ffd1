import jax


def test_fake_cpu_devices():
    assert jax.device_count() == 4
