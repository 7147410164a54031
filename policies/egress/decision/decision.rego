# METADATA
# title: egress decision
# description: >-
#   Decides whether an agent may send this request. Rules come from data:
#   data.egress.agents[user][agent].rules, each with host globs, optional ports,
#   schemes, methods, path prefixes and the secrets it lets the proxy inject.
#   data.egress.killed["user/agent"] (or data.egress.killed[agent]) denies everything.
#   Checks run in this order, first match wins for the reason:
#   killed, unknown agent, allowed, host/port, scheme, method, path.
package egress.decision

default allow := false

default reason := "default_deny"

# -- agent -------------------------------------------------------------------------------

_agent_key := concat("/", [input.agent.user, input.agent.name])

_killed if data.egress.killed[_agent_key] == true

_killed if data.egress.killed[input.agent.name] == true

_killed if data.egress.killed["*"] == true

_rules := data.egress.agents[input.agent.user][input.agent.name].rules

_known if count(_rules) >= 0

# -- matching one rule ---------------------------------------------------------------------

_schemes(rule) := object.get(rule, "schemes", ["https"])

_default_ports(rule) := [443, 80] if "http" in _schemes(rule)

else := [443]

_ports(rule) := object.get(rule, "ports", _default_ports(rule))

_host_match(rule) if {
	some pattern in rule.hosts
	glob.match(lower(pattern), ["."], input.request.host)
	input.request.port in _ports(rule)
}

_scheme_match(_) if input.phase == "connect"

_scheme_match(rule) if input.request.scheme in _schemes(rule)

_method_match(_) if input.phase == "connect"

_method_match(rule) if not rule.methods

_method_match(rule) if "*" in rule.methods

_method_match(rule) if input.request.method in rule.methods

_path_match(_) if input.phase == "connect"

_path_match(rule) if not rule.paths

_path_match(rule) if {
	some prefix in rule.paths
	startswith(input.request.path, prefix)
}

_matches(rule) if {
	input.phase != "gateway" # proxy rules never admit gateway calls (and vice versa)
	_host_match(rule)
	_scheme_match(rule)
	_method_match(rule)
	_path_match(rule)
}

# -- the decision document ------------------------------------------------------------------

allow if {
	not _killed
	some rule in _rules
	_matches(rule)
}

reason := "agent_killed" if _killed

else := "agent_unknown" if not _known

else := "allowed" if allow

else := "route_not_allowed" if {
	input.phase == "gateway"
	not _some_route
} else := "model_not_allowed" if {
	input.phase == "gateway"
} else := "host_not_allowed" if {
	not _some_host
} else := "scheme_not_allowed" if {
	not _some_scheme
} else := "method_not_allowed" if {
	not _some_method
} else := "path_not_allowed"

_some_route if {
	some rule in _rules
	input.gateway.route in rule.routes
}

_some_host if {
	some rule in _rules
	_host_match(rule)
}

_some_scheme if {
	some rule in _rules
	_host_match(rule)
	_scheme_match(rule)
}

_some_method if {
	some rule in _rules
	_host_match(rule)
	_scheme_match(rule)
	_method_match(rule)
}

# Secrets the proxy may inject for this request: those listed by every rule that matched.
secrets contains name if {
	allow
	some rule in _rules
	_matches(rule)
	some name in object.get(rule, "secrets", [])
}

# Ids of the rules that allowed the request, so a decision explains itself.
rules contains object.get(rule, "id", "unnamed") if {
	allow
	some rule in _rules
	_matches(rule)
}

# Report mode for rolling out a policy: the proxy logs `would_deny` but lets the request
# through. Set per agent ("user/agent" or agent name) or for everyone ("*") in
# data.egress.report_only. The kill switch is never softened by it.
default report := false

report if data.egress.report_only[_agent_key] == true

report if data.egress.report_only[input.agent.name] == true

report if data.egress.report_only["*"] == true

# -- the LLM gateway ------------------------------------------------------------------------
# Gateway requests carry input.phase == "gateway" and input.gateway = {route, model}. Rules
# with `routes` (and optionally `models`) admit them; proxy rules (hosts) never do, and gateway
# rules never admit proxy traffic.

_gateway_match(rule) if {
	input.phase == "gateway"
	input.gateway.route in rule.routes
	_model_match(rule)
}

_model_match(rule) if not rule.models

# a request that names no model (listing models, files) is not model-restricted
_model_match(_) if input.gateway.model == ""

_model_match(rule) if "*" in rule.models

_model_match(rule) if input.gateway.model in rule.models

allow if {
	not _killed
	some rule in _rules
	_gateway_match(rule)
}

secrets contains name if {
	allow
	some rule in _rules
	_gateway_match(rule)
	some name in object.get(rule, "secrets", [])
}

rules contains object.get(rule, "id", "unnamed") if {
	allow
	some rule in _rules
	_gateway_match(rule)
}

# -- passthrough ----------------------------------------------------------------------------
# A rule with "inspect": false marks its hosts as not needing inspection: the CONNECT is
# decided as usual, then tunnelled without TLS interception (no per-request decisions, no
# secret swap; still logged with bytes and duration). Listing secrets on such a host is a
# policy error the proxy refuses (a secret can never be injected into a tunnel it cannot read).
passthrough if {
	input.phase == "connect"
	allow
	some rule in _rules
	_matches(rule)
	rule.inspect == false
}
