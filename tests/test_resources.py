"""Resource sampling: a real process found by its listening port, and docker stats parsing."""

import os
import socket
import subprocess
import sys
import time

from bench.metrics.resources import (
    DockerSampler,
    Sampler,
    container_publishing,
    parse_docker_size,
    parse_docker_stats,
    sampler_for,
)
from bench.processes import pid_on_port


def test_samples_a_process_found_by_its_listening_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (f"import socket,time; s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); "
            "b=bytearray(64*1024*1024); time.sleep(30)")
    p = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(100):
            pid = pid_on_port(port)
            if pid:
                break
            time.sleep(0.05)
        assert pid == p.pid
        sampler = sampler_for(pid, port)
        assert type(sampler) is Sampler
        sampler = Sampler(pid, interval_s=0.05).start()
        time.sleep(0.4)
        st = sampler.stop()
        assert st.rss_peak_bytes > 64 * 1024 * 1024  # the 64 MiB the process holds
        assert st.rss_mean_bytes <= st.rss_peak_bytes and st.cpu_mean_pct is not None
    finally:
        p.kill()
        p.wait()


def test_docker_stats_lines_are_parsed():
    line = ('{"BlockIO":"0B / 0B","CPUPerc":"12.34%","Container":"abc","ID":"abc","MemPerc":"1.50%",'
            '"MemUsage":"123.5MiB / 7.6GiB","Name":"qdrant","NetIO":"1kB / 2kB","PIDs":"40"}')
    mem, cpu = parse_docker_stats(line)
    assert mem == int(123.5 * 2**20) and cpu == 12.34
    assert parse_docker_size("1.5GiB") == int(1.5 * 2**30) and parse_docker_size("512kB") == 512_000
    assert parse_docker_size("12B") == 12 and parse_docker_size("n/a") is None
    assert parse_docker_stats("not json") is None
    assert parse_docker_stats('{"CPUPerc": "1%", "MemUsage": "-- / --"}') is None


def test_no_docker_daemon_means_no_container_and_an_empty_sample():
    # This machine has the docker CLI but no daemon (or no CLI at all): the lookup must answer None, not raise.
    assert container_publishing(6333) is None
    assert type(sampler_for(None, 6333)) is Sampler
    st = DockerSampler("no-such-container", interval_s=0.05).start().stop()
    assert st.rss_peak_bytes is None


def test_a_trial_shorter_than_one_interval_still_gets_an_rss_reading():
    st = Sampler(os.getpid(), interval_s=60).start().stop()
    assert st.rss_peak_bytes is not None and st.rss_peak_bytes > 0 and st.cpu_mean_pct is None
