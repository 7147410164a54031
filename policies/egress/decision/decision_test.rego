package egress.decision_test

import data.egress.decision

_agents := {
	"alice@example.com": {"triage-bot": {"rules": [
		{
			"id": "github-api",
			"hosts": ["api.github.com"],
			"methods": ["GET", "POST"],
			"paths": ["/repos/", "/user"],
			"secrets": ["github"],
		},
		{"id": "any-example", "hosts": ["*.example.com"], "methods": ["*"]},
		{"id": "corp", "hosts": ["**.corp.example.net"], "ports": [8443], "methods": ["GET"]},
		{"id": "mirror", "hosts": ["mirror.internal.test"], "schemes": ["http"], "methods": ["GET"]},
		{"id": "uploads", "hosts": ["upload.example.org"], "paths": ["/v1/"], "secrets": ["upload", "github"]},
	]}},
	"bob@example.com": {"triage-bot": {"rules": [{"id": "bob-pypi", "hosts": ["pypi.org"]}]}},
	"carol@example.com": {"bot": {"rules": [{"id": "carol-all", "hosts": ["*.example.com"]}]}},
}

_killed := {"carol@example.com/bot": true}

_alice := {"user": "alice@example.com", "name": "triage-bot", "namespace": "ns-a"}

_bob := {"user": "bob@example.com", "name": "triage-bot", "namespace": "ns-b"}

_carol := {"user": "carol@example.com", "name": "bot", "namespace": "ns-c"}

_req(agent, method, scheme, host, port, path) := {
	"agent": agent,
	"phase": "request",
	"request": {"scheme": scheme, "host": host, "port": port, "method": method, "path": path},
}

_get(host, path) := _req(_alice, "GET", "https", host, 443, path)

_connect(agent, host, port) := {"agent": agent, "phase": "connect", "request": {"host": host, "port": port}}

_decide(inp) := d if {
	d := decision with input as inp
		with data.egress.agents as _agents
		with data.egress.killed as _killed
}

_allowed(inp, rule_id) if {
	d := _decide(inp)
	d.allow == true
	d.reason == "allowed"
	rule_id in d.rules
}

_denied(inp, reason) if {
	d := _decide(inp)
	d.allow == false
	d.reason == reason
	count(d.secrets) == 0
}

# -- allow by host, method, path ---------------------------------------------------------

test_github_get_repos_allowed if _allowed(_get("api.github.com", "/repos/o/r"), "github-api")

test_github_post_allowed if _allowed(
	_req(_alice, "POST", "https", "api.github.com", 443, "/repos/o/r/issues"),
	"github-api",
)

test_github_user_prefix_allowed if _allowed(_get("api.github.com", "/user"), "github-api")

test_github_secret_listed if {
	d := _decide(_get("api.github.com", "/repos/o/r"))
	d.secrets == {"github"}
}

test_wildcard_one_label_allowed if _allowed(_get("www.example.com", "/"), "any-example")

test_wildcard_any_method if _allowed(
	_req(_alice, "DELETE", "https", "api.example.com", 443, "/x"),
	"any-example",
)

test_double_star_many_labels if _allowed(
	_req(_alice, "GET", "https", "a.b.corp.example.net", 8443, "/"),
	"corp",
)

test_plain_http_rule_allows_http_port_80 if _allowed(
	_req(_alice, "GET", "http", "mirror.internal.test", 80, "/simple/"),
	"mirror",
)

test_rule_without_methods_allows_any if _allowed(
	_req(_alice, "PUT", "https", "upload.example.org", 443, "/v1/files"),
	"uploads",
)

test_secrets_union_of_rule if {
	d := _decide(_req(_alice, "PUT", "https", "upload.example.org", 443, "/v1/files"))
	d.secrets == {"upload", "github"}
}

test_no_secrets_for_rule_without_secrets if {
	d := _decide(_get("www.example.com", "/"))
	d.allow
	count(d.secrets) == 0
}

# -- deny by host ---------------------------------------------------------------------------

test_unknown_host_denied if _denied(_get("evil.com", "/"), "host_not_allowed")

test_wildcard_does_not_match_apex if _denied(_get("example.com", "/"), "host_not_allowed")

test_wildcard_does_not_match_two_labels if _denied(_get("a.b.example.com", "/"), "host_not_allowed")

test_double_star_needs_one_label if _denied(
	_req(_alice, "GET", "https", "corp.example.net", 8443, "/"),
	"host_not_allowed",
)

test_suffix_attack_denied if _denied(_get("api.github.com.evil.net", "/repos/o/r"), "host_not_allowed")

test_prefix_attack_denied if _denied(_get("evilapi.github.com", "/repos/o/r"), "host_not_allowed")

test_wrong_port_denied if _denied(
	_req(_alice, "GET", "https", "api.github.com", 8443, "/repos/o/r"),
	"host_not_allowed",
)

test_custom_port_only if _denied(
	_req(_alice, "GET", "https", "x.corp.example.net", 443, "/"),
	"host_not_allowed",
)

# -- deny by scheme, method, path ---------------------------------------------------------------

test_http_scheme_not_allowed_on_https_rule if _denied(
	_req(_alice, "GET", "http", "api.github.com", 443, "/repos/o/r"),
	"scheme_not_allowed",
)

test_method_not_allowed if _denied(
	_req(_alice, "DELETE", "https", "api.github.com", 443, "/repos/o/r"),
	"method_not_allowed",
)

test_method_case_matters if _denied(
	_req(_alice, "get", "https", "api.github.com", 443, "/repos/o/r"),
	"method_not_allowed",
)

test_path_not_allowed if _denied(_get("api.github.com", "/admin"), "path_not_allowed")

test_path_prefix_is_literal if _denied(_get("api.github.com", "/repos"), "path_not_allowed")

test_upload_path_outside_prefix if _denied(
	_req(_alice, "PUT", "https", "upload.example.org", 443, "/v2/files"),
	"path_not_allowed",
)

# -- connect phase ------------------------------------------------------------------------------

test_connect_allowed_host if _allowed(_connect(_alice, "api.github.com", 443), "github-api")

test_connect_unlisted_host_refused if _denied(_connect(_alice, "evil.com", 443), "host_not_allowed")

test_connect_wrong_port_refused if _denied(_connect(_alice, "api.github.com", 22), "host_not_allowed")

# -- agents, kill switch, default deny ------------------------------------------------------------

test_rules_are_per_agent if _denied(
	_req(_bob, "GET", "https", "api.github.com", 443, "/repos/o/r"),
	"host_not_allowed",
)

test_bob_own_rule if _allowed(_req(_bob, "GET", "https", "pypi.org", 443, "/simple/"), "bob-pypi")

test_unknown_agent_denied if _denied(
	_req({"user": "mallory@example.com", "name": "triage-bot"}, "GET", "https", "api.github.com", 443, "/"),
	"agent_unknown",
)

test_same_agent_name_other_user_unknown if _denied(
	_req({"user": "eve@example.com", "name": "triage-bot"}, "GET", "https", "pypi.org", 443, "/"),
	"agent_unknown",
)

test_killed_agent_denied if _denied(
	_req(_carol, "GET", "https", "www.example.com", 443, "/"),
	"agent_killed",
)

test_killed_agent_connect_denied if _denied(_connect(_carol, "www.example.com", 443), "agent_killed")

test_kill_by_agent_name if {
	d := decision with input as _get("api.github.com", "/repos/o/r")
		with data.egress.agents as _agents
		with data.egress.killed as {"triage-bot": true}
	d.allow == false
	d.reason == "agent_killed"
}

test_global_kill if {
	d := decision with input as _get("api.github.com", "/repos/o/r")
		with data.egress.agents as _agents
		with data.egress.killed as {"*": true}
	d.reason == "agent_killed"
}

test_default_deny_without_input if {
	d := decision with data.egress.agents as _agents with data.egress.killed as _killed
	d.allow == false
}

test_default_deny_without_data if {
	d := decision with input as _get("api.github.com", "/repos/o/r")
		with data.egress.agents as {}
		with data.egress.killed as {}
	d.allow == false
	d.reason == "agent_unknown"
}

test_kill_flag_false_does_not_kill if {
	d := decision with input as _get("api.github.com", "/repos/o/r")
		with data.egress.agents as _agents
		with data.egress.killed as {"alice@example.com/triage-bot": false}
	d.allow == true
}

test_report_only_flag_for_agent if {
	d := decision with input as _get("api.github.com", "/admin")
		with data.egress.agents as _agents
		with data.egress.killed as {}
		with data.egress.report_only as {"alice@example.com/triage-bot": true}
	d.allow == false
	d.reason == "path_not_allowed"
	d.report == true
}

test_report_only_defaults_false if {
	d := _decide(_get("api.github.com", "/admin"))
	d.report == false
}

_gw_agents := {"alice@example.com": {"triage-bot": {"rules": [
	{"id": "web", "hosts": ["api.github.com"]},
	{"id": "llm", "routes": ["openai"], "models": ["gpt-4o-mini"], "secrets": ["openai"]},
	{"id": "embed", "routes": ["embeddings"]},
]}}}

_gw(route, model) := {
	"agent": _alice,
	"phase": "gateway",
	"request": {"scheme": "https", "host": "gateway", "port": 443, "method": "POST", "path": "/v1/chat/completions"},
	"gateway": {"route": route, "model": model},
}

_gw_decide(inp) := d if {
	d := decision with input as inp
		with data.egress.agents as _gw_agents
		with data.egress.killed as {}
}

test_gateway_route_and_model_allowed if {
	d := _gw_decide(_gw("openai", "gpt-4o-mini"))
	d.allow
	d.secrets == {"openai"}
	d.rules == {"llm"}
}

test_gateway_model_not_allowed if {
	d := _gw_decide(_gw("openai", "gpt-4o"))
	not d.allow
	d.reason == "model_not_allowed"
}

test_gateway_route_not_allowed if {
	d := _gw_decide(_gw("anthropic", "claude"))
	not d.allow
	d.reason == "route_not_allowed"
}

test_gateway_route_without_model_list_allows_any_model if {
	d := _gw_decide(_gw("embeddings", "text-embedding-3-small"))
	d.allow
}

test_gateway_rules_never_admit_proxy_traffic if {
	d := decision with input as {
		"agent": _alice, "phase": "request",
		"request": {"scheme": "https", "host": "openai", "port": 443, "method": "POST", "path": "/"},
	}
		with data.egress.agents as _gw_agents
		with data.egress.killed as {}
	not d.allow
}

test_gateway_request_without_model_is_route_scoped_only if {
	d := _gw_decide(_gw("openai", ""))
	d.allow
}

test_proxy_rules_never_admit_gateway_calls if {
	d := decision with input as {
		"agent": _alice, "phase": "gateway",
		"request": {"scheme": "https", "host": "api.github.com", "port": 443, "method": "GET", "path": "/repos/o/r"},
		"gateway": {"route": "github", "model": ""},
	}
		with data.egress.agents as _agents
		with data.egress.killed as {}
	not d.allow
	d.reason == "route_not_allowed"
}

test_passthrough_marked_on_connect if {
	d := decision with input as _connect(_alice, "files.example.org", 443)
		with data.egress.agents as {"alice@example.com": {"triage-bot": {"rules": [
			{"id": "blobs", "hosts": ["files.example.org"], "inspect": false},
		]}}}
		with data.egress.killed as {}
	d.allow
	d.passthrough
}

test_passthrough_never_for_requests if {
	d := decision with input as _req(_alice, "GET", "https", "files.example.org", 443, "/")
		with data.egress.agents as {"alice@example.com": {"triage-bot": {"rules": [
			{"id": "blobs", "hosts": ["files.example.org"], "inspect": false},
		]}}}
		with data.egress.killed as {}
	not d.passthrough
}
