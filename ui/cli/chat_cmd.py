"""``hangar chat MODEL``: one answer with ``--prompt``, or an interactive chat saved with the app's conversations.

MODEL is a name from the library (`hangar ls`), the path of a ``.gguf`` file (llama.cpp) or of an MLX model
folder (``config.json`` + safetensors).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from core.chat.models import ResolvedModel, load_options, resolve_model, spec_for
from core.chat.session import ChatSession, ReplyDelta
from core.chat.store import ChatSettings, ChatStore, MessageState
from core.engine.host import ChatMessage, EngineHost, LoadProgress
from core.errors import UsageError
from ui.cli import emit_json

if TYPE_CHECKING:
    from core.app import AppContext

REPL_HELP = "Commands: /regen  /continue  /system TEXT  /new  /exit   (Ctrl-C stops a reply)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", metavar="MODEL", help="a library name (see `hangar ls`), a .gguf file or an MLX folder"
    )
    parser.add_argument("--prompt", help="ask one question, print the answer and exit")
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


def run(app: AppContext, args: argparse.Namespace) -> int:
    if args.max_tokens < 1:
        raise UsageError("--max-tokens must be at least 1.")
    settings = ChatSettings(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed).validated()
    from core.library.service import Library

    if args.docs:
        app.docs.index.info(args.docs)  # an unknown collection fails before the model loads
    model = resolve_model(args.model, Library.for_app(app))
    options = load_options(
        app.settings.current,
        context_length=args.context_length,
        gpu_layers=args.gpu_layers,
        lora_path=args.lora,
    )
    host = app.new_engine_host("chat")
    quiet = bool(args.json)
    disconnect = None
    if not quiet:
        print(f"Loading {model.name} ({model.engine})…", file=sys.stderr, flush=True)
        disconnect = host.events.connect(_progress_printer())
    try:
        info = host.load_blocking(spec_for(model, options))
    finally:
        if disconnect:
            disconnect()
    if not quiet:
        print(f"\rLoaded in {info.load_seconds:.1f} s, context {info.context_length} tokens.", file=sys.stderr)
    if args.prompt is not None:
        return _one_shot(host, args, settings, model.engine, app)
    return _repl(app, host, args, settings, model)


def _progress_printer():
    def show(event: object) -> None:
        if isinstance(event, LoadProgress) and event.fraction is not None:
            print(f"\r  {event.fraction * 100:3.0f}%", end="", file=sys.stderr, flush=True)

    return show


def _one_shot(
    host: EngineHost, args: argparse.Namespace, settings: ChatSettings, engine: str, app: AppContext | None = None
) -> int:
    sources = app.docs.sources_for(args.docs, args.prompt) if app is not None and args.docs else None
    system = "\n\n".join(part for part in (args.system, sources.system_text() if sources else "") if part)
    messages = [ChatMessage("system", system)] if system else []
    messages.append(ChatMessage("user", args.prompt))
    on_chunk = None if args.json else (lambda text: print(text, end="", flush=True))
    stats = host.generate_blocking(messages, settings.to_params(), on_chunk=on_chunk)
    if args.json:
        emit_json(
            {
                "text": stats.text,
                "prompt_tokens": stats.prompt_tokens,
                "completion_tokens": stats.completion_tokens,
                "tokens_per_second": round(stats.tokens_per_second, 2),
                "time_to_first_token_ms": round(stats.time_to_first_token_ms, 2),
                "stop_reason": stats.stop_reason,
                "engine": engine,
                **({"sources": sources.to_json(), "retrieval": sources.retrieval} if sources else {}),
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
    app: AppContext, host: EngineHost, args: argparse.Namespace, settings: ChatSettings, model: ResolvedModel
) -> int:
    chats = ChatStore(app.store)
    conversation = chats.create(
        model=str(model.path),
        engine=model.engine,
        system_prompt=args.system,
        settings=settings,
    )
    session = ChatSession(chats, host, conversation.id)
    session.events.connect(lambda e: print(e.text, end="", flush=True) if isinstance(e, ReplyDelta) else None)
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
                session.events.connect(
                    lambda e: print(e.text, end="", flush=True) if isinstance(e, ReplyDelta) else None
                )
                print("(new conversation)", file=sys.stderr)
                continue
            if text.startswith("/system"):
                chats.update(conversation.id, system_prompt=text[len("/system") :].strip())
                print("(system prompt set)", file=sys.stderr)
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
                    session.send(text)
            except UsageError as exc:
                print(f"({exc})", file=sys.stderr)
                continue
            _await_reply(session)
    finally:
        session.close()
    print(f"Saved as conversation {conversation.id}.", file=sys.stderr)
    return 0


def _await_reply(session: ChatSession) -> None:
    try:
        reply = session.wait()
    except KeyboardInterrupt:
        session.stop()
        reply = session.wait(30)
    print()
    if reply.state == MessageState.FAILED:
        print(f"(the reply failed: {reply.error})", file=sys.stderr)
    elif reply.state == MessageState.STOPPED:
        print("(stopped)", file=sys.stderr)
    else:
        print(
            _stats_line(reply.completion_tokens, reply.tokens_per_second, reply.time_to_first_token_ms), file=sys.stderr
        )
