package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// loadBalancer writes an address from --pool into the status of every Service of type
// LoadBalancer that has none (and names no loadBalancerClass, which would make it another
// controller's), then keeps doing so until SIGTERM. The pool must be a range the node
// routes to itself: the address exists only in kube-proxy's rules.
func loadBalancer(args []string) error {
	fs := flag.NewFlagSet("loadbalancer", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig allowed to update services/status")
	pool := fs.String("pool", "", "the addresses to hand out, as a CIDR")
	interval := fs.Duration("interval", time.Second, "how often to look for Services without an address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	_, network, err := net.ParseCIDR(*pool)
	if err != nil || network.IP.To4() == nil {
		return fmt.Errorf("--pool %q is not an IPv4 CIDR", *pool)
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ticker := time.NewTicker(*interval)
	defer ticker.Stop()
	for {
		if err := assignAddresses(ctx, client, network); err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "loadbalancer: %v\n", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func assignAddresses(ctx context.Context, client kubernetes.Interface, network *net.IPNet) error {
	services, err := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	used := map[string]bool{}
	for _, svc := range services.Items {
		for _, ingress := range svc.Status.LoadBalancer.Ingress {
			used[ingress.IP] = true
		}
	}
	var errs []error
	for i := range services.Items {
		svc := &services.Items[i]
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(svc.Status.LoadBalancer.Ingress) > 0 ||
			(svc.Spec.LoadBalancerClass != nil && *svc.Spec.LoadBalancerClass != "") {
			continue
		}
		ip := freeAddress(network, used)
		if ip == "" {
			errs = append(errs, fmt.Errorf("no address left in %v for %s/%s", network, svc.Namespace, svc.Name))
			continue
		}
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip, IPMode: ptr(corev1.LoadBalancerIPModeVIP)}}
		if _, err := client.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("%s/%s: %w", svc.Namespace, svc.Name, err))
			continue
		}
		used[ip] = true
		fmt.Fprintf(os.Stderr, "loadbalancer: %s/%s gets %s\n", svc.Namespace, svc.Name, ip)
	}
	return errors.Join(errs...)
}

// freeAddress is the lowest host address of network that is not in use.
func freeAddress(network *net.IPNet, used map[string]bool) string {
	ones, bits := network.Mask.Size()
	size := int64(1) << (bits - ones)
	base := new(big.Int).SetBytes(network.IP.To4())
	for n := int64(1); n < size-1; n++ {
		b := new(big.Int).Add(base, big.NewInt(n)).Bytes()
		ip := net.IP(append(make([]byte, 4-len(b)), b...)).String()
		if !used[ip] {
			return ip
		}
	}
	return ""
}

func ptr[T any](v T) *T { return &v }
