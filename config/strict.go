package config

// DecodeStrict decodes a YAML document into out (a pointer to a struct whose fields carry yaml
// tags) with the strict decoder configuration files are read with: an unknown key, a key given
// twice, a wrong shape or an unparsable scalar is a problem naming its field path
// (`tests[0].expect.statuz: unknown key (line 7); known keys here: ...`). It returns every
// problem, in document order; no defaults, normalisation or validation are applied. Other files
// of Portcullis (`portcullis test` files) use it so that they read like the configuration.
func DecodeStrict(data []byte, out any) []string {
	if _, err := decode(data, out); err != nil {
		return splitJoined(err)
	}
	return nil
}
