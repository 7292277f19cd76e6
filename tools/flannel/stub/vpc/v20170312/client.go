// Package v20170312 stands in for the tencentcloud SDK's VPC client, which the module proxy
// refuses at the version stock flannel requires. It has the types and calls flannel's
// tencentvpc backend uses; every call fails, so that backend reports it is not built in
// while every other backend is stock flannel's code.
package v20170312

import "errors"

// ErrNotBuiltIn is what every call returns.
var ErrNotBuiltIn = errors.New("the tencent-vpc backend is not built into this flanneld (its cloud SDK is a stub)")

// Client is a VPC API client.
type Client struct{}

// NewClientWithSecretId returns a client whose calls all fail with ErrNotBuiltIn.
func NewClientWithSecretId(secretId, secretKey, region string) (*Client, error) {
	return &Client{}, nil
}

// Filter selects route tables.
type Filter struct {
	Name   *string
	Values []*string
}

// Route is one entry of a route table.
type Route struct {
	DestinationCidrBlock *string
	GatewayType          *string
	GatewayId            *string
	RouteId              *uint64
	RouteType            *string
	Enabled              *bool
}

// RouteTable is a VPC route table.
type RouteTable struct {
	RouteTableId *string
	RouteSet     []*Route
}

// DescribeRouteTablesRequest lists route tables.
type DescribeRouteTablesRequest struct {
	Filters []*Filter
}

// NewDescribeRouteTablesRequest returns an empty request.
func NewDescribeRouteTablesRequest() *DescribeRouteTablesRequest {
	return &DescribeRouteTablesRequest{}
}

// DescribeRouteTablesResponseParams is the answer's body.
type DescribeRouteTablesResponseParams struct {
	RouteTableSet []*RouteTable
}

// DescribeRouteTablesResponse is the answer to DescribeRouteTables.
type DescribeRouteTablesResponse struct {
	Response *DescribeRouteTablesResponseParams
}

// DescribeRouteTables fails with ErrNotBuiltIn.
func (c *Client) DescribeRouteTables(*DescribeRouteTablesRequest) (*DescribeRouteTablesResponse, error) {
	return nil, ErrNotBuiltIn
}

// DeleteRoutesRequest deletes routes from a table.
type DeleteRoutesRequest struct {
	RouteTableId *string
	Routes       []*Route
}

// NewDeleteRoutesRequest returns an empty request.
func NewDeleteRoutesRequest() *DeleteRoutesRequest { return &DeleteRoutesRequest{} }

// DeleteRoutesResponse is the answer to DeleteRoutes.
type DeleteRoutesResponse struct{}

// DeleteRoutes fails with ErrNotBuiltIn.
func (c *Client) DeleteRoutes(*DeleteRoutesRequest) (*DeleteRoutesResponse, error) {
	return nil, ErrNotBuiltIn
}

// CreateRoutesRequest adds routes to a table.
type CreateRoutesRequest struct {
	RouteTableId *string
	Routes       []*Route
}

// NewCreateRoutesRequest returns an empty request.
func NewCreateRoutesRequest() *CreateRoutesRequest { return &CreateRoutesRequest{} }

// CreateRoutesResponse is the answer to CreateRoutes.
type CreateRoutesResponse struct{}

// CreateRoutes fails with ErrNotBuiltIn.
func (c *Client) CreateRoutes(*CreateRoutesRequest) (*CreateRoutesResponse, error) {
	return nil, ErrNotBuiltIn
}
