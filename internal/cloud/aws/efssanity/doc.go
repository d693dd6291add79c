// Package efssanity holds only tests: csi-sanity against the EFS driver
// with its controller as `ec2csi serve --driver efs --cloud aws --mode
// controller` assembles it, talking to the AWS fake through the real SDK.
// It is a package of its own because csi-sanity runs once per test binary.
package efssanity
