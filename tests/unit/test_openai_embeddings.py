"""OpenAIEmbeddings without a network: batching, dimensions, retries, and answers of the wrong size."""

from __future__ import annotations

from types import SimpleNamespace

import httpx2
import openai
import pytest

from signoff.models.base import Deadline, ModelFailure
from signoff.models.openai_chat import OpenAIEmbeddings


class FakeEmbeddingsApi:
    """``client.embeddings``: answers from a list (an exception is raised), records each request."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.requests: list[dict] = []

    def create(self, **kwargs: object) -> object:
        self.requests.append(kwargs)
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, Exception):
            raise answer
        texts = kwargs["input"]
        size = answer if isinstance(answer, int) else kwargs.get("dimensions", 3)
        # out of order on purpose: the index says which text a vector is for
        data = [SimpleNamespace(index=i, embedding=[float(i)] * size) for i in range(len(texts))]
        return SimpleNamespace(data=list(reversed(data)))


def embedder(api: FakeEmbeddingsApi, slept: list[float], **options: object) -> OpenAIEmbeddings:
    model = OpenAIEmbeddings(api_key="k", sleep=slept.append, **{"dimensions": 3, **options})
    model._client = SimpleNamespace(embeddings=api)
    return model


def rate_limited() -> openai.RateLimitError:
    request = httpx2.Request("POST", "https://api.openai.com/v1/embeddings")
    return openai.RateLimitError("slow down", response=httpx2.Response(429, request=request), body=None)


def bad_request() -> openai.BadRequestError:
    request = httpx2.Request("POST", "https://api.openai.com/v1/embeddings")
    body = {"error": {"message": "input too long"}}
    return openai.BadRequestError("bad", response=httpx2.Response(400, request=request), body=body)


def test_texts_are_embedded_in_batches_in_order_with_the_dimensions_asked_for():
    api, slept = FakeEmbeddingsApi(), []
    vectors = embedder(api, slept, batch_size=2).embed(["a", "b", "c", "d", "e"])
    assert [len(r["input"]) for r in api.requests] == [2, 2, 1]
    assert vectors == [[0.0] * 3, [1.0] * 3, [0.0] * 3, [1.0] * 3, [0.0] * 3]
    assert {r["dimensions"] for r in api.requests} == {3}
    assert {r["model"] for r in api.requests} == {"text-embedding-3-small"}


def test_models_that_cannot_shorten_their_vectors_are_not_sent_dimensions():
    api, slept = FakeEmbeddingsApi(), []
    embedder(api, slept, model="text-embedding-ada-002").embed(["a"])
    assert "dimensions" not in api.requests[0]


def test_a_rate_limit_is_retried_with_backoff():
    api, slept = FakeEmbeddingsApi(rate_limited()), []
    assert embedder(api, slept).embed(["a"]) == [[0.0] * 3]
    assert len(api.requests) == 2 and len(slept) == 1


def test_client_errors_are_not_retried_and_say_why():
    api, slept = FakeEmbeddingsApi(bad_request()), []
    with pytest.raises(ModelFailure, match="HTTP 400: input too long"):
        embedder(api, slept).embed(["a"])
    assert len(api.requests) == 1 and slept == []


def test_retries_stop_at_the_deadline():
    api, slept = FakeEmbeddingsApi(rate_limited(), rate_limited()), []
    with pytest.raises(ModelFailure, match="429"):
        embedder(api, slept).embed(["a"], Deadline(lambda: 500, 0))
    assert len(api.requests) == 1


def test_vectors_of_another_size_are_refused_with_the_setting_to_fix():
    api, slept = FakeEmbeddingsApi(8), []
    with pytest.raises(ModelFailure, match="8 dimensions, not 3: set SIGNOFF_EMBEDDING_DIMENSIONS"):
        embedder(api, slept).embed(["a"])
