"""``pipejit serve``: a FastAPI/uvicorn HTTP server on the micro-batcher.

It speaks text-embeddings-inference's routes (``/embed``, ``/predict``, ``/rerank``),
OpenAI's ``/v1/embeddings`` and a generic ``/pipeline`` route for every task, with
``/health``, ``/info`` and Prometheus ``/metrics``. FastAPI, uvicorn and
prometheus-client come with the ``serve`` extra (``pip install 'pipejit[serve]'``);
outside it only the HTTP benchmark imports it (``process.py``, which needs none of them).
"""
