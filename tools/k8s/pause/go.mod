// Test tooling only: the pod sandbox ("pause") program of the test cluster's containerd.
module dotmesh.test/tools/k8s/pause

go 1.26.0
