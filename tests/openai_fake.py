"""A small OpenAI-compatible server for tests: canned answers streamed a word at a time, a
/tokenize like vLLM's (a token per word, or `tokens_per_word`), a context of 512 tokens that
it refuses to exceed with vLLM's words, and faults on demand (break off mid-answer, speak
another protocol)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeTextServer:
    def __init__(self, model: str = "served", words: int = 40, word_seconds: float = 0.01):
        self.model, self.words, self.word_seconds = model, words, word_seconds
        self.tokens_per_word = 1
        self.max_model_len = 512
        self.break_after: int | None = None  # words sent before the connection is cut
        self.other_protocol = False
        self.requests: list[dict] = []
        self.paths: list[str] = []  # of the POSTs, in order
        self.connections: set[int] = set()  # the client ports requests came from
        self.open_streams = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeTextServer:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def prompt_tokens(self, messages: list[dict]) -> int:
        words = sum(len(m["content"].split()) for m in messages)
        return words * self.tokens_per_word + 4

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if fake.other_protocol:
                    return self._send(200, b"<html>not an API</html>", "text/html")
                body = {"object": "list", "data": [{"id": fake.model, "object": "model"}]}
                self._send(200, json.dumps(body).encode())

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                fake.paths.append(self.path)
                fake.connections.add(self.client_address[1])
                if body.get("model") != fake.model:
                    error = {
                        "error": {"message": f"The model `{body.get('model')}` does not exist."}
                    }
                    return self._send(404, json.dumps(error).encode())
                tokens = fake.prompt_tokens(body["messages"])
                if self.path == "/tokenize":
                    answer = {"count": tokens, "max_model_len": fake.max_model_len,
                              "tokens": [1] * tokens}  # fmt: skip
                    return self._send(200, json.dumps(answer).encode())
                if tokens > fake.max_model_len:
                    message = (f"This model's maximum context length is {fake.max_model_len} "
                               f"tokens. However, your prompt contains at least {tokens} input "
                               "tokens, which exceeds this limit.")  # fmt: skip
                    error = {"error": {"message": message, "code": 400}}
                    return self._send(400, json.dumps(error).encode())
                self._stream(body, tokens)

            def _stream(self, body: dict, prompt_tokens: int) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                fake.open_streams += 1
                try:
                    count = min(body.get("max_tokens", fake.words), fake.words)
                    for index in range(count):
                        if fake.break_after is not None and index >= fake.break_after:
                            self.connection.shutdown(2)  # the server dies mid-answer
                            return
                        time.sleep(fake.word_seconds)
                        piece = ("" if index == 0 else " ") + f"w{index}"
                        self._event({"choices": [{"index": 0, "delta": {"content": piece}}]})
                    reason = "length" if count < fake.words else "stop"
                    self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
                    usage = {"completion_tokens": count, "prompt_tokens": prompt_tokens}
                    self._event({"choices": [], "usage": usage})
                    self._chunk(b"data: [DONE]\n\n")
                    self._chunk(b"")
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass  # the client closed the stream: a cancel
                finally:
                    fake.open_streams -= 1

            def _event(self, data: dict) -> None:
                self._chunk(f"data: {json.dumps(data)}\n\n".encode())

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _send(self, status: int, data: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
