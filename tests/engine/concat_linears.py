"""A module whose three linears read one input, compiled in the all-C++ one-row settings,
and how many library linears the generated code calls (one where inductor concatenated
them, three where not)."""

import re

import torch


class QueryKeyValue(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = (torch.nn.Linear(16, 16) for _ in range(3))

    def forward(self, x):
        return self.q(x) * self.k(x) + self.v(x)


def library_linear_calls() -> int:
    """Compiles a fresh ``QueryKeyValue`` inside ``all_cpp(True)``, checks its output against
    eager, and counts the library linears its code calls (the all-C++ wrapper calls each
    through one of torch's C shims)."""
    from torch._inductor.utils import run_and_get_code

    from pipejit.engine.all_cpp import all_cpp

    torch._dynamo.reset()
    model, x = QueryKeyValue().eval(), torch.randn(2, 4, 16)
    with torch.inference_mode(), all_cpp(True):
        out, (code,) = run_and_get_code(torch.compile(model), x)
    with torch.inference_mode():
        torch.testing.assert_close(out, model(x))
    return len(re.findall(r"aoti_torch_cpu__\w*linear\w*\(", code))
