"""``hangar chat MODEL``: one answer with ``--prompt``, or an interactive chat saved with the app's conversations.

MODEL is a name from the library (`hangar ls`), the path of a ``.gguf`` file (llama.cpp) or of an MLX model
folder (``config.json`` + safetensors).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.chat.models import ResolvedModel, load_options, resolve_model, spec_for
from core.chat.session import ChatSession, ReplyDelta, ReplyRestarted, SessionEvent
from core.chat.store import ChatStore, MessageState
from core.engine.host import EngineHost
from core.engine.images import NO_PROJECTOR, ChatImage, image_from_file
from core.engine.protocol import ChatMessage, EngineEvent, EngineRecovering, GenerationParams, LoadOptions, LoadProgress
from core.errors import HangarError, UnsupportedModelError, UsageError
from core.remote.rpc import parse_endpoints
from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext

REPL_HELP = (
    "Commands: /image PATH  /regen  /continue  /system TEXT  /new  /load [MODEL]  /exit   (/image shows a vision "
    "model an image with your next message; Ctrl-C stops a reply; /load reloads the model after a failure or switches "
    "to another)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="a library name (see `hangar ls`), a .gguf file, an MLX folder, or REMOTE[:MODEL] (see `hangar remote`)",
    )
    parser.add_argument("--prompt", help="ask one question, print the answer and exit")
    parser.add_argument(
        "--image",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="show the model an image with --prompt (PNG, JPEG, GIF, BMP; repeat for several); needs a vision "
        "model with its mmproj file",
    )
    parser.add_argument("--system", default="", help="system prompt")
    parser.add_argument("--max-tokens", type=int, default=512, help="longest reply in tokens (default 512)")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (0 = greedy)")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed, for repeatable answers")
    parser.add_argument("--context-length", type=int, default=None, help="context to allocate, in tokens")
    parser.add_argument("--gpu-layers", default=None, help="'auto' (default), -1 for all, or a number")
    parser.add_argument("--lora", default=None, help="a LoRA adapter to apply (GGUF for llama.cpp, MLX folder)")
    parser.add_argument(
        "--docs",
        metavar="COLLECTION",
        default=None,
        help="answer from a document collection (`hangar docs`); replies cite their sources",
    )
    parser.add_argument("--mcp-config", type=Path, metavar="FILE", help="tools from the MCP servers of an mcp.json")
    parser.add_argument(
        "--tools",
        action="store_true",
        help="tools from the app's MCP servers (the mcp.json that Settings → MCP servers edits); plain chat starts "
        "no servers",
    )
    parser.add_argument(
        "--tool-choice",
        metavar="NAME|auto|required",
        default=None,
        help="auto (the model decides), required (it must call one) or a tool's name; implies --allow-tools",
    )
    parser.add_argument(
        "--allow-tools", action="store_true", help="run the model's tool calls without asking (else each is asked)"
    )
    parser.add_argument(
        "--rpc",
        metavar="HOST:PORT,...",
        default=None,
        help="spread the model over these llama.cpp RPC workers (`hangar worker` on each)",
    )


def run(app: AppContext, args: argparse.Namespace) -> int:
    if args.max_tokens < 1:
        raise UsageError("--max-tokens must be at least 1.")
    settings = GenerationParams(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed).validated()
    if (args.tools or args.mcp_config or args.docs) and args.prompt is None:
        raise UsageError(
            "Tools and documents work with --prompt on the command line (the window's chat has them interactively).",
            hint="Ask one question with --prompt, or use /image in the interactive chat for images.",
        )
    if args.docs:
        app.docs.index.info(args.docs)  # an unknown collection fails before the model loads
    if args.tools and not args.mcp_config:
        from core.tools.config import load_app_config

        args.mcp_config, _ = load_app_config(app.paths.data_dir)  # missing or wrong: one line before any load
    if args.tool_choice and not args.mcp_config:
        raise UsageError("--tool-choice needs --tools or --mcp-config FILE (the tools to choose from).")
    if args.image and args.prompt is None:
        raise UsageError("--image goes with --prompt (the question about the image).")
    images = tuple(image_from_file(path) for path in args.image)  # a bad image fails before the model loads
    model = resolve_model(args.model, app.library, app.remotes)
    if images and model.engine == "llama" and model.projector is None:
        raise UnsupportedModelError(NO_PROJECTOR)
    options = load_options(
        app.settings.current,
        context_length=args.context_length,
        gpu_layers=args.gpu_layers,
        lora_path=args.lora,
        model=model,
        rpc_servers=parse_endpoints(args.rpc),
    )
    if options.rpc_servers and model.engine != "llama":
        raise UsageError("RPC workers take GGUF models (llama.cpp) only.")
    host = app.new_engine_host("chat")
    quiet = bool(args.json)
    disconnect = host.events.connect(_show_recovery)
    try:
        safe_mode = _load(host, model, options, quiet)
        allocation = _allocation(app, model, options, host.model)
        if args.prompt is not None:
            return _one_shot(host, args, settings, model.engine, safe_mode, app, allocation, images)
        return _repl(app, host, args, settings, model, options)
    finally:
        disconnect()


def _load(host: EngineHost, model: ResolvedModel, options: LoadOptions, quiet: bool) -> tuple[str, ...]:
    """Load (in safe mode if the engine crashes, or if it is known to here); say what safe mode changed."""
    if quiet:
        info = host.load_blocking(spec_for(model, options))
        return info.safe_mode
    print(f"Loading {model.name} ({model.engine})…", file=sys.stderr, flush=True)
    disconnect = host.events.connect(_show_progress)
    try:
        info = host.load_blocking(spec_for(model, options))
    finally:
        disconnect()
    print(f"\rLoaded in {info.load_seconds:.1f} s, context {info.context_length} tokens.", file=sys.stderr)
    if info.safe_mode:
        print(f"Safe mode: {'; '.join(info.safe_mode)}.", file=sys.stderr)
        if info.safe_mode_reason:
            print(f"  (because {_lower_first(info.safe_mode_reason)})", file=sys.stderr)
    return info.safe_mode


def _allocation(app: AppContext, model: ResolvedModel, options: LoadOptions, info: Any) -> dict[str, Any] | None:
    """A llama.cpp load recorded next to its estimate, per device over RPC workers, as the chat window records
    it; ``--json`` reports it as ``allocation`` (estimate and actual MiB per device, and which estimator)."""
    if model.engine != "llama" or info is None or not info.allocated:
        return None
    from core.estimate.records import device_allocation, record_load
    from core.remote.split import estimate_for_load

    estimate = estimate_for_load(model.path, options, app.hardware(), info)
    if estimate is not None:
        try:
            record_load(app.store, estimate, info.allocated)
        except Exception as exc:  # a record is a nicety: it never fails a chat
            print(f"(load not recorded: {exc})", file=sys.stderr)
    return {
        "source": estimate.source if estimate is not None else None,
        "devices": device_allocation(estimate, info.allocated),
    }


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _show_progress(event: EngineEvent) -> None:
    if isinstance(event, LoadProgress) and event.fraction is not None:
        print(f"\r  {event.fraction * 100:3.0f}%", end="", file=sys.stderr, flush=True)


def _show_recovery(event: EngineEvent) -> None:
    """What crashed and what safe mode changes (on stderr, so ``--json`` keeps stdout pure)."""
    if isinstance(event, EngineRecovering):
        print(f"\n({event.describe()})", file=sys.stderr, flush=True)


def _one_shot(
    host: EngineHost,
    args: argparse.Namespace,
    settings: GenerationParams,
    engine: str,
    safe_mode: tuple[str, ...],
    app: AppContext,
    allocation: dict[str, Any] | None = None,
    images: tuple[ChatImage, ...] = (),
) -> int:
    sources = app.docs.sources_for(args.docs, args.prompt) if args.docs else None
    system = "\n\n".join(part for part in (args.system, sources.system_text() if sources else "") if part)
    messages = [ChatMessage("system", system)] if system else []
    messages.append(ChatMessage("user", args.prompt, images=images))
    on_chunk = None if args.json else (lambda text: print(text, end="", flush=True))
    calls: list[Any] = []
    if args.mcp_config:
        from ui.cli.chat_tools import run_with_tools

        stats, calls = run_with_tools(host, messages, settings, args, on_chunk)
    else:
        stats = host.generate_blocking(messages, settings, on_chunk=on_chunk)
    if args.json:
        model = host.model
        emit_json(
            {
                "text": stats.text,
                "prompt_tokens": stats.prompt_tokens,
                "image_tokens": stats.image_tokens,
                "completion_tokens": stats.completion_tokens,
                "tokens_per_second": round(stats.tokens_per_second, 2),
                "time_to_first_token_ms": round(stats.time_to_first_token_ms, 2),
                "stop_reason": stats.stop_reason,
                "engine": engine,
                "safe_mode": list(model.safe_mode if model else safe_mode),
                **({"allocation": allocation} if allocation else {}),
                **({"sources": sources.to_json(), "retrieval": sources.retrieval} if sources else {}),
                **({"tool_calls": [c.to_json() for c in calls]} if args.mcp_config else {}),
            }
        )
    else:
        print()
        for n, hit in enumerate(sources.hits if sources else (), start=1):
            print(f"[{n}] {hit.path} ({hit.place})", file=sys.stderr)
        print(
            _stats_line(stats.completion_tokens, stats.tokens_per_second, stats.time_to_first_token_ms), file=sys.stderr
        )
    return 0


def _stats_line(tokens: int | None, tps: float | None, ttft: float | None) -> str:
    return f"[{tokens or 0} tokens, {tps or 0:.1f} tokens/s, first token after {ttft or 0:.0f} ms]"


def _repl(
    app: AppContext,
    host: EngineHost,
    args: argparse.Namespace,
    settings: GenerationParams,
    model: ResolvedModel,
    options: LoadOptions,
) -> int:
    chats = ChatStore(app.store)
    conversation = chats.create(
        model=str(model.path),
        engine=model.engine,
        system_prompt=args.system,
        settings=settings,
    )
    session = ChatSession(chats, host, conversation.id)
    session.events.connect(_print_reply_event)
    images: list[ChatImage] = []  # attached with /image, sent with the next message
    print(REPL_HELP, file=sys.stderr)
    try:
        while True:
            try:
                line = input("you> " if sys.stdin.isatty() else "")
            except EOFError:
                break
            except KeyboardInterrupt:
                print(file=sys.stderr)
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                break
            if text == "/new":
                conversation = chats.create(
                    model=conversation.model,
                    engine=conversation.engine,
                    system_prompt=conversation.system_prompt,
                    settings=settings,
                )
                session.close()
                session = ChatSession(chats, host, conversation.id)
                session.events.connect(_print_reply_event)
                print("(new conversation)", file=sys.stderr)
                continue
            if text.startswith("/system"):
                chats.update(conversation.id, system_prompt=text[len("/system") :].strip())
                print("(system prompt set)", file=sys.stderr)
                continue
            if text == "/image" or text.startswith("/image "):
                _attach_image(host, images, text[len("/image") :].strip())
                continue
            if text == "/load" or text.startswith("/load "):
                model = _reload(app, host, chats, conversation.id, model, options, text[len("/load") :].strip())
                continue
            try:
                if text == "/regen":
                    session.regenerate()
                elif text == "/continue":
                    session.continue_reply()
                elif text.startswith("/"):
                    print(REPL_HELP, file=sys.stderr)
                    continue
                else:
                    session.send(text, images=images)
                    images.clear()  # sent (kept with the conversation); on a refusal they wait for the next try
            except HangarError as exc:  # a usage slip, or no model after a failure: one line, the chat goes on
                hint = "" if host.model is not None else " Type /load to load the model again."
                print(f"({exc}){hint}", file=sys.stderr)
                continue
            _await_reply(session, host)
    finally:
        session.close()
    print(f"Saved as conversation {conversation.id}.", file=sys.stderr)
    return 0


def _attach_image(host: EngineHost, images: list[ChatImage], path: str) -> None:
    """``/image PATH``: check the image (and that the model reads images) and keep it for the next message."""
    if not path:
        names = ", ".join(i.name for i in images) or "none"
        print(f"(usage: /image PATH; attached for the next message: {names})", file=sys.stderr)
        return
    try:
        model = host.model
        if model is not None and not model.vision:
            raise UnsupportedModelError(NO_PROJECTOR)
        image = image_from_file(Path(path.strip("'\"")))
    except HangarError as exc:
        print(f"({exc})", file=sys.stderr)
        return
    images.append(image)
    print(f"(image {image.name}, {image.width} × {image.height}, goes with your next message)", file=sys.stderr)


def _print_reply_event(event: SessionEvent) -> None:
    if isinstance(event, ReplyDelta):
        print(event.text, end="", flush=True)
    elif isinstance(event, ReplyRestarted):
        print("\n(the reply starts over)", file=sys.stderr, flush=True)


def _reload(
    app: AppContext,
    host: EngineHost,
    chats: ChatStore,
    conversation_id: int,
    model: ResolvedModel,
    options: LoadOptions,
    name: str,
) -> ResolvedModel:
    """``/load [MODEL]``: load the model again (after a crash or a failure) or switch to another one."""
    try:
        if name:
            model = resolve_model(name, app.library, app.remotes)
        _load(host, model, options, quiet=False)
        chats.update(conversation_id, model=str(model.path), engine=model.engine)
    except HangarError as exc:
        print(f"({exc})", file=sys.stderr)
    return model


def _await_reply(session: ChatSession, host: EngineHost) -> None:
    try:
        reply = session.wait()
    except KeyboardInterrupt:
        session.stop()
        reply = session.wait(30)
    print()
    if reply.state == MessageState.FAILED:
        hint = "" if host.model is not None else " Type /load to load the model again."
        print(f"(the reply failed: {reply.error}){hint}", file=sys.stderr)
    elif reply.state == MessageState.STOPPED:
        print("(stopped)", file=sys.stderr)
    else:
        print(
            _stats_line(reply.completion_tokens, reply.tokens_per_second, reply.time_to_first_token_ms), file=sys.stderr
        )
