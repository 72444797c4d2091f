package logsvc

import "testing"

func TestServiceDescServesSubscribeLogs(t *testing.T) {
	t.Parallel()
	d := serviceDesc()
	if len(d.Methods) == 0 || len(d.Streams) == 0 || d.ServiceName != "warren.v1.LogService" {
		t.Fatalf("serviceDesc: %+v", d)
	}
	for _, sd := range d.Streams {
		if sd.StreamName == "SubscribeLogs" && !sd.ServerStreams {
			t.Fatal("SubscribeLogs is not server streaming")
		}
	}
}
