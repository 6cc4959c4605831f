# Pavilion's default authorization policy (package pavilion.authz), used
# when the policy directory has no package of that name. A caller may do
# exactly what its grants give: an API key's or a token's scopes, the
# configuration's [auth.grants] for users, groups, workloads and
# certificates, and the anonymous_pull globs for callers without
# credentials. Copy it into your policy directory to extend it; deny rules
# there win over any allow.
package pavilion.authz

import rego.v1

default allow := false

allow if input.action in input.granted
