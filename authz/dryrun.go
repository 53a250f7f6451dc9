package authz

// dryRun serves the decision a dry-run rule made (docs/decisions.md#dry_run). The rule's
// decision is kept whole, as the answer's DryRun, for the logs, the metrics and `portcullis
// check`: nothing is copied out of it field by field, so nothing it says can be lost. The
// answer served is an allow: the rule's own when it allowed; for a would-be deny, the allow of
// the identity the token proved, if any (its identity headers, the token removed with
// forward_token: false), with the deny's reason, so that portcullis_decisions_total counts the
// reason the rule would have denied for.
func (e *Engine) dryRun(evaluated *Decision, r *Request) *Decision {
	var served *Decision
	if evaluated.Allow {
		c := *evaluated
		served = &c
	} else {
		var ci *identity
		if evaluated.Identity != nil {
			ci = e.render(evaluated.Identity)
		}
		served = e.allow(evaluated.Reason, ci, r)
		served.Rule = evaluated.Rule
	}
	served.DryRun = evaluated
	return served
}
