"""`diffemb serve --ray`: replicas per GPU or autoscaled, and the real thing on a local Ray (slow: Ray's start-up)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from openai import OpenAI

from diffemb import DiffEmbedEncoder
from diffemb.serve import ServeConfig
from diffemb.serve.process import start_diffemb_serve
from diffemb.serve.ray_serve import MAX_ONGOING_REQUESTS, build_deployment, deployment_options

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


def test_one_replica_per_gpu_or_one_on_cpu() -> None:
    on_gpus = deployment_options(gpus=4)
    assert on_gpus["num_replicas"] == 4 and on_gpus["ray_actor_options"] == {"num_gpus": 1.0}
    halves = deployment_options(gpus=2, gpus_per_replica=0.5)
    assert halves["num_replicas"] == 4 and halves["ray_actor_options"] == {"num_gpus": 0.5}
    on_cpu = deployment_options(gpus=0)
    assert on_cpu["num_replicas"] == 1 and on_cpu["ray_actor_options"] == {"num_cpus": 1}
    assert deployment_options(gpus=0, replicas=3)["num_replicas"] == 3
    # Ray's default of 5 requests per replica would starve the cross-request batcher.
    assert on_gpus["max_ongoing_requests"] == MAX_ONGOING_REQUESTS >= 64


def test_autoscaling_bounds_are_checked() -> None:
    scaled = deployment_options(gpus=8, min_replicas=1, max_replicas=8)
    assert "num_replicas" not in scaled
    assert scaled["autoscaling_config"]["min_replicas"] == 1 and scaled["autoscaling_config"]["max_replicas"] == 8
    with pytest.raises(ValueError, match="between 0 and --max-replicas"):
        deployment_options(gpus=0, min_replicas=5, max_replicas=2)
    with pytest.raises(ValueError, match="needs --max-replicas"):
        deployment_options(gpus=0, min_replicas=1)
    with pytest.raises(ValueError, match="not both"):
        deployment_options(gpus=0, replicas=2, max_replicas=4)


def test_the_application_is_one_ingress_deployment() -> None:
    options = deployment_options(gpus=0, replicas=2)
    deployment = build_deployment(lambda: None, ServeConfig(served_model_name="m"), options)
    assert deployment.name == "DiffEmbedServer" and deployment.num_replicas == 2
    assert deployment.ray_actor_options == {"num_cpus": 1}


@pytest.mark.slow
def test_serve_on_a_local_ray_answers_the_openai_client_and_stops_on_sigterm(
    minilm_folder: Path, minilm_encoder: DiffEmbedEncoder, tmp_path: Path
) -> None:
    server = start_diffemb_serve(
        minilm_folder, tmp_path / "ray.log", "--ray", "--device", "cpu", "--served-model-name", "minilm",
        "--log-level", "warning", timeout=400,
    )  # fmt: skip
    try:
        client = OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=120)
        texts = ["bees dance to show where flowers are", "the harbour freezes in winter"]
        documents = client.embeddings.create(model="minilm", input=texts)
        queries = client.embeddings.create(model="minilm:query", input=texts[:1])
    finally:
        code = server.stop(timeout=120)
    got = np.asarray([item.embedding for item in documents.data], dtype=np.float32)
    np.testing.assert_allclose(got, minilm_encoder.encode_documents(texts), atol=1e-5)
    np.testing.assert_allclose(queries.data[0].embedding, minilm_encoder.encode_queries(texts[:1])[0], atol=1e-5)
    assert code == 0, server.output()[-3000:]
