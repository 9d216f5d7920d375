package policies

import (
	"fmt"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"

	"github.com/medicus-cloud/trust/attest"
)

// Limits on CEL rules. The cost limit bounds the work of one evaluation (cel-go's cost units,
// roughly one per operation and per element visited); a rule that reaches it denies.
const (
	MaxRuleLength = 4096
	RuleCostLimit = 10000
)

// celIssue is a CEL compile problem at a line (1-based, 0 if unknown) and column (0-based) of
// the expression.
type celIssue struct {
	line, col int
	msg       string
}

type rule struct {
	Rule
	prg cel.Program
}

// celEnv declares one variable, claims: a map with the JSON field names of attest.Claims (hex as
// lowercase hex strings, TCB and attributes as uint). Cross-type numeric comparisons let authors
// write claims.tcb.snp >= 22 without a u suffix.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)),
		cel.CrossTypeNumericComparisons(true),
	)
})

func compileRule(r Rule) (*rule, []celIssue) {
	if r.Expr == "" {
		return nil, []celIssue{{msg: "expr is empty"}}
	}
	if len(r.Expr) > MaxRuleLength {
		return nil, []celIssue{{msg: fmt.Sprintf("expr is %d bytes, at most %d", len(r.Expr), MaxRuleLength)}}
	}
	env, err := celEnv()
	if err != nil {
		return nil, []celIssue{{msg: "CEL environment: " + err.Error()}}
	}
	ast, iss := env.Compile(r.Expr)
	if iss.Err() != nil {
		var out []celIssue
		for _, e := range iss.Errors() {
			out = append(out, celIssue{line: e.Location.Line(), col: e.Location.Column(), msg: e.Message})
		}
		if len(out) == 0 {
			out = append(out, celIssue{msg: iss.Err().Error()})
		}
		return nil, out
	}
	if !ast.OutputType().IsExactType(types.BoolType) {
		return nil, []celIssue{{line: 1, msg: fmt.Sprintf("must return bool, returns %s (compare explicitly, e.g. claims.debug == false)", ast.OutputType())}}
	}
	prg, err := env.Program(ast, cel.CostLimit(RuleCostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, []celIssue{{msg: err.Error()}}
	}
	return &rule{Rule: r, prg: prg}, nil
}

// eval returns whether the rule holds. Any error (an absent claim, the cost limit) is a denial.
func (r *rule) eval(vars map[string]any) (bool, error) {
	out, _, err := r.prg.Eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("returned %s, not bool", out.Type())
	}
	return b, nil
}

// celVars exposes claims to CEL the way they appear in JSON. Every field is present (but
// policy_smt_allowed, SNP only), so a rule
// can test a map with has() or "k" in m; reading an absent key is an error, which denies.
func celVars(c *attest.Claims) map[string]any {
	hexes := func(m map[string]attest.Hex) map[string]string {
		out := make(map[string]string, len(m))
		for k, v := range m {
			out[k] = v.String()
		}
		return out
	}
	u := func(m map[string]uint64) map[string]uint64 {
		if m == nil {
			return map[string]uint64{}
		}
		return m
	}
	pl := c.Platform
	if pl == nil {
		pl = map[string]string{}
	}
	adv := c.Advisories
	if adv == nil {
		adv = []string{}
	}
	m := map[string]any{
		"tee":                  string(c.TEE),
		"measurement":          c.Measurement.String(),
		"measurements":         hexes(c.Measurements),
		"config":               hexes(c.Config),
		"tcb":                  u(c.TCB),
		"tcb_status":           c.TCBStatus,
		"advisories":           adv,
		"debug":                c.Debug,
		"migration":            c.Migration,
		"platform_smt_enabled": c.PlatformSMTEnabled.String(),
		"report_data":          c.ReportData.String(),
		"platform":             pl,
		"attributes":           u(c.Attributes),
	}
	if c.PolicySMTAllowed != nil {
		m["policy_smt_allowed"] = *c.PolicySMTAllowed
	}
	return map[string]any{"claims": m}
}
