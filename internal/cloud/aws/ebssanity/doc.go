// Package ebssanity holds only tests: csi-sanity against the EBS driver as
// `ec2csi serve --driver ebs --cloud aws` assembles it, talking to the AWS
// fake through the real SDK. It is a package of its own because csi-sanity
// runs once per test binary.
package ebssanity
