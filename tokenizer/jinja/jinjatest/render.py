# Renders Jinja templates as transformers renders chat templates (the reference the Go tests
# compare against): one JSON object {"template": str, "vars": {...}} a line on stdin, one JSON
# object {"out": str} or {"error": str} a line on stdout. Needs Debian's python3-jinja2.
import json
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


class Generation(jinja2.ext.Extension):
    # transformers' AssistantTracker without the tracking: {% generation %} renders its body.
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                    extensions=[Generation, jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception

compiled = {}
for line in sys.stdin:
    req = json.loads(line)
    try:
        if req["template"] not in compiled:
            compiled[req["template"]] = env.from_string(req["template"])
        out = {"out": compiled[req["template"]].render(**req["vars"])}
    except Exception as e:  # any failure: the Go side must fail too
        out = {"error": "%s: %s" % (type(e).__name__, e)}
    sys.stdout.write(json.dumps(out) + "\n")
