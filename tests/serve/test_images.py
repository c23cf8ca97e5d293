"""Images through the server (issue 15), with the official ``openai`` and ``anthropic`` clients against the real
generated tiny vision model (llama.cpp's mtmd projector): OpenAI chat ``image_url`` parts, Anthropic ``image``
blocks and Responses ``input_image`` parts reach the engine (the image's tokens counted in the prompt); web
addresses, bad images and a model without its projector are a 400 with one clear line, and nothing loads for them."""

from __future__ import annotations

import base64

import pytest

from core.devkit.visiongen import TinyProjectorConfig, png_bytes, write_tiny_vision_model
from core.engine.images import NO_PROJECTOR

IMAGE_TOKENS = TinyProjectorConfig().image_tokens
PNG = png_bytes(24, 24)
DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
pytestmark = pytest.mark.slow


@pytest.fixture
def vision_name(app, served_models: list[str], tmp_path_factory: pytest.TempPathFactory) -> str:  # type: ignore[no-untyped-def]
    from core.models.types import ImportMode

    model, _ = write_tiny_vision_model(tmp_path_factory.mktemp("vision"))
    before = set(served_models)
    app.library.import_paths([model.parent], ImportMode.LINK)
    (name,) = {e.name for e in app.library.list()} - before
    return name


@pytest.fixture
def claude(base_url: str):  # type: ignore[no-untyped-def]
    import anthropic

    with anthropic.Anthropic(base_url=base_url.removesuffix("/v1"), api_key="unused", max_retries=0) as c:
        yield c


def _ask(client, model: str, *parts: dict) -> object:  # type: ignore[no-untyped-def]
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": [*parts, {"type": "text", "text": "What is in the picture?"}]}],
        max_tokens=4,
        temperature=0,
    )


def _prompt_tokens(client, model: str) -> int:  # type: ignore[no-untyped-def]
    return int(_ask(client, model).usage.prompt_tokens)


def test_openai_image_url_parts_reach_the_model(client, vision_name: str) -> None:  # type: ignore[no-untyped-def]
    plain = _prompt_tokens(client, vision_name)
    image = {"type": "image_url", "image_url": {"url": DATA_URL, "detail": "auto"}}
    one = _ask(client, vision_name, image)
    assert one.choices[0].message.role == "assistant" and one.usage.completion_tokens >= 1
    assert one.usage.prompt_tokens >= plain + IMAGE_TOKENS
    two = _ask(client, vision_name, image, image)
    assert two.usage.prompt_tokens - one.usage.prompt_tokens >= IMAGE_TOKENS

    stream = client.chat.completions.create(
        model=vision_name,
        messages=[{"role": "user", "content": [image, {"type": "text", "text": "Describe it."}]}],
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage.prompt_tokens >= _prompt_tokens_of(client, vision_name) + IMAGE_TOKENS


def _prompt_tokens_of(client, model: str) -> int:  # type: ignore[no-untyped-def]
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Describe it."}], max_tokens=1
    )
    return int(reply.usage.prompt_tokens)


def test_anthropic_image_blocks_reach_the_model(claude, vision_name: str) -> None:  # type: ignore[no-untyped-def]
    def ask(*blocks: dict) -> object:
        return claude.messages.create(
            model=vision_name,
            max_tokens=4,
            messages=[{"role": "user", "content": [*blocks, {"type": "text", "text": "What is this?"}]}],
        )

    plain = ask()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": DATA_URL.split(",")[1]}}
    seen = ask(image)
    assert seen.usage.input_tokens >= plain.usage.input_tokens + IMAGE_TOKENS and seen.content[0].type == "text"

    import anthropic

    with pytest.raises(anthropic.BadRequestError) as caught:
        ask({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}})
    assert caught.value.status_code == 400
    assert "base64 data, not url; this server fetches no web addresses" in caught.value.body["error"]["message"]


def test_responses_input_image_reaches_the_model(client, vision_name: str) -> None:  # type: ignore[no-untyped-def]
    def ask(*parts: dict) -> object:
        content = [{"type": "input_text", "text": "What is this?"}, *parts]
        return client.responses.create(
            model=vision_name, input=[{"role": "user", "content": content}], max_output_tokens=4
        )

    plain = ask()
    seen = ask({"type": "input_image", "image_url": DATA_URL, "detail": "auto"})
    assert seen.usage.input_tokens >= plain.usage.input_tokens + IMAGE_TOKENS and seen.output[0].type == "message"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/cat.png", "Images are taken as base64 data: URLs"),
        ("file:///etc/passwd", "this server fetches no web addresses and reads no files"),
        ("/etc/hostname", "reads no files"),
        ("data:image/webp;base64," + base64.b64encode(b"RIFF\0\0\0\0WEBPVP8 ").decode(), "is a WebP image"),
        ("data:image/png,rawbytes", "must be base64"),
    ],
)
def test_what_the_server_does_not_take_is_one_line(client, vision_name: str, url: str, message: str) -> None:  # type: ignore[no-untyped-def]
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        _ask(client, vision_name, {"type": "image_url", "image_url": {"url": url}})
    error = caught.value.body
    assert message in error["message"] and "\n" not in error["message"] and error["param"] == "messages"


def test_a_model_without_projector_is_a_400_before_it_loads(  # type: ignore[no-untyped-def]
    client, claude, server, served_models: list[str]
) -> None:
    import anthropic
    import openai

    text_model = served_models[0]
    with pytest.raises(openai.BadRequestError) as caught:
        _ask(client, text_model, {"type": "image_url", "image_url": {"url": DATA_URL}})
    assert caught.value.body["message"] == NO_PROJECTOR
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model=text_model, input=[{"role": "user", "content": [{"type": "input_image", "image_url": DATA_URL}]}]
        )
    assert caught.value.body["message"] == NO_PROJECTOR
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": DATA_URL.split(",")[1]}}
    with pytest.raises(anthropic.BadRequestError) as caught_a:
        claude.messages.create(model=text_model, max_tokens=4, messages=[{"role": "user", "content": [image]}])
    assert caught_a.value.body["error"]["message"] == NO_PROJECTOR
    assert server.pool.loaded() == []  # refused before anything was loaded for it
    # and the same model answers text as before
    assert _ask(client, text_model).choices[0].message.content is not None
