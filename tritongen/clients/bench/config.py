"""What one benchmark run is asked to do: the target, the load, the prompts' sizes."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import UsageError


@dataclass
class BenchConfig:
    url: str = "127.0.0.1:8001"
    protocol: str = "grpc"  #: grpc | http | openai (streamed /v1/completions)
    model: str = "ensemble"
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 32, 64])
    input_len: int = 128  #: prompt tokens (synthetic prompts)
    output_len: int = 128  #: tokens generated per request
    requests: int | None = None  #: requests per level (default 4 x concurrency, at least 8)
    duration: float | None = None  #: seconds per level instead of a request count
    prompts_file: str | None = None  #: JSONL with {"text": ...} (or "prompt"/"text_input") per line
    tokenizer_dir: str | None = None  #: tokenizer for synthetic prompts (default: the served model's)
    #: send min_tokens = max_tokens so every request generates output_len tokens; None: when the target model
    #: has a min_tokens input (the llmapi route's model has none)
    exact_output: bool | None = None
    warmup: int = 1  #: unmeasured requests before the first level
    timeout: float = 600.0  #: seconds one request may take
    headers: dict[str, str] = field(default_factory=dict)
    repo: str | None = None  #: the served repository (for its tritongen.lock.yaml), when known

    def validate(self) -> None:
        if self.protocol not in ("grpc", "http", "openai"):
            raise UsageError(f"protocol {self.protocol!r}: use grpc, http or openai")
        if not self.concurrency or any(c < 1 for c in self.concurrency):
            raise UsageError(f"concurrency levels must be positive integers, got {self.concurrency}")
        if self.requests is not None and self.duration is not None:
            raise UsageError("give --requests or --duration, not both")
        if self.requests is not None and self.requests < 1:
            raise UsageError(f"--requests must be at least 1, got {self.requests}")
        if self.duration is not None and self.duration <= 0:
            raise UsageError(f"--duration must be positive, got {self.duration}")
        if self.input_len < 1 or self.output_len < 1:
            raise UsageError("--input-len and --output-len must be at least 1")

    def requests_for(self, concurrency: int) -> int | None:
        if self.duration is not None:
            return None
        return self.requests if self.requests is not None else max(8, 4 * concurrency)


@dataclass
class Prompt:
    text: str
    tokens: int | None = None  #: prompt length in tokens when known (tokenizer-made prompts)
    output_len: int | None = None  #: per-prompt override from a prompts file
