package wire

import "strings"

// ReadOnly reports whether a VPP request message only reads state. Dumps,
// gets, pings and version queries are reads; everything else (adds, deletes,
// sets, enables, cli) counts as a write. Tests use it to prove that a sync of
// an unchanged state writes nothing.
func ReadOnly(msgName string) bool {
	switch msgName {
	case "control_ping", "sockclnt_create", "sockclnt_delete", "memclnt_keepalive",
		"get_first_msg_id", "api_versions", "ip_route_lookup", "ip_route_lookup_v2":
		return true
	}
	// Plugins' own pings (acl_plugin_control_ping) and version queries
	// (acl_plugin_get_version, covered by _get_) change nothing either.
	return strings.HasSuffix(msgName, "_control_ping") || strings.HasSuffix(msgName, "_dump") || strings.HasSuffix(msgName, "_get") || strings.Contains(msgName, "_show_") ||
		strings.Contains(msgName, "_get_") || strings.HasPrefix(msgName, "show_")
}
