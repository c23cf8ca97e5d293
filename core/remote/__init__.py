"""Remote engines: OpenAI-compatible servers (vLLM, SGLang, llama-server, Ollama, LM Studio, mlx-lm, another Hangar)
that Hangar chats through, and llama.cpp RPC workers that take part of a local model."""
