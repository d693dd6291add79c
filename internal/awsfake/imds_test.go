package awsfake

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

func TestIMDS(t *testing.T) {
	e := start(t, Options{Region: "eu-central-1"})
	c := ctx(t)
	const inst = "i-0123456789abcdef0"
	if err := e.srv.AddInstance(inst, "eu-central-1c", "c6i.xlarge"); err != nil {
		t.Fatal(err)
	}
	md := httptest.NewServer(e.srv.IMDS(inst))
	defer md.Close()
	client := imds.New(imds.Options{Endpoint: md.URL})

	doc, err := client.GetInstanceIdentityDocument(c, nil)
	if err != nil {
		t.Fatalf("GetInstanceIdentityDocument: %v", err)
	}
	if doc.InstanceID != inst || doc.AvailabilityZone != "eu-central-1c" || doc.InstanceType != "c6i.xlarge" || doc.Region != "eu-central-1" || doc.AccountID != "123456789012" {
		t.Errorf("identity document %+v", doc.InstanceIdentityDocument)
	}
	region, err := client.GetRegion(c, nil)
	if err != nil || region.Region != "eu-central-1" {
		t.Errorf("GetRegion = %v, %v", region, err)
	}
	get := func(path string) string {
		t.Helper()
		out, err := client.GetMetadata(c, &imds.GetMetadataInput{Path: path})
		if err != nil {
			t.Fatalf("GetMetadata %s: %v", path, err)
		}
		defer out.Content.Close()
		b, _ := io.ReadAll(out.Content)
		return string(b)
	}
	if got := get("placement/availability-zone-id"); got != "euc1-az3" {
		t.Errorf("zone ID %q", got)
	}
	vol, _ := e.srv.AddVolume(VolumeSpec{Zone: "eu-central-1c"})
	attachAndWait(t, e, vol, inst, "/dev/xvdbq")
	if got := get("block-device-mapping"); got != "ami\nebs1\nroot" {
		t.Errorf("block-device-mapping %q", got)
	}
	if got := get("block-device-mapping/ebs1"); got != "xvdbq" {
		t.Errorf("ebs1 %q", got)
	}

	// IMDSv1 is refused.
	resp, err := http.Get(md.URL + "/latest/meta-data/instance-id")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("IMDSv1 request: %d", resp.StatusCode)
	}
	if _, err := client.GetMetadata(c, &imds.GetMetadataInput{Path: "no/such/path"}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown path: %v", err)
	}
}
